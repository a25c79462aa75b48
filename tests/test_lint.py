"""The lint set-up runs offline from the venv, and its tools agree on the line length."""
import configparser
import os.path as osp
import shutil
import sys

import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LINT_PACKAGES = ('pre-commit', 'pre-commit-hooks', 'flake8', 'isort', 'yapf')


def _hooks():
    with open(osp.join(ROOT, '.pre-commit-config.yaml')) as f:
        cfg = yaml.safe_load(f)
    return cfg['repos']


def test_hooks_are_local_and_their_tools_are_installed():
    repos = _hooks()
    assert [r['repo'] for r in repos] == ['local']  # nothing to clone from the network
    hooks = repos[0]['hooks']
    assert {'flake8', 'isort', 'yapf'} <= {h['id'] for h in hooks}
    # tools/run_tests.sh puts the venv's bin first on PATH: every entry must be there
    venv_bin = osp.dirname(sys.executable)
    for hook in hooks:
        assert hook['language'] == 'system', hook['id']
        exe = hook['entry'].split()[0]
        assert shutil.which(exe, path=venv_bin), f'{exe} (hook {hook["id"]}) not in {venv_bin}'


def test_lint_packages_are_pinned():
    with open(osp.join(ROOT, 'requirements.txt')) as f:
        lines = [line.strip() for line in f]
    pinned = {line.split('==')[0] for line in lines if '==' in line}
    for name in LINT_PACKAGES:
        assert name in pinned, f'pin {name}==<version> in requirements.txt'


def test_tools_agree_on_line_length_and_first_party():
    cfg = configparser.ConfigParser()
    cfg.read(osp.join(ROOT, 'setup.cfg'))
    assert cfg.getint('flake8', 'max-line-length') == 100
    assert cfg.getint('isort', 'line_length') == 100
    assert cfg.getint('yapf', 'column_limit') == 100
    assert 'mmkd_det' in cfg.get('isort', 'known_first_party').split(',')
