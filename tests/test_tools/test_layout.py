"""tools/ is a set of thin command lines over the package, grouped as mmdet's:
no script imports another script or reaches the package through sys.path or
os.chdir, and none is longer than about 150 lines."""
import ast
import glob
import os.path as osp

from tests.conftest import ROOT

SCRIPTS = sorted(glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True))
EXPECTED = {
    'train.py', 'test.py', 'dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh',
    'setup_env.sh', 'run_tests.sh', 'demo.sh', 'model_converters/export_student.py',
    'misc/gen_synthetic.py', 'misc/demo.py', 'misc/check_dataset.py', 'misc/gpu_throughput.sh',
    *(f'analysis_tools/{name}.py' for name in (
        'benchmark', 'measure_cost', 'measure_throughput', 'compare_mmrazor_step', 'grad_norms',
        'visualize_masks', 'measure_skd_memory', 'soak', 'print_records'))}


def test_tools_are_grouped_as_mmdet_groups_them():
    found = {osp.relpath(p, osp.join(ROOT, 'tools'))
             for p in glob.glob(osp.join(ROOT, 'tools', '**', '*.*'), recursive=True)}
    assert found == EXPECTED


def imported_modules(tree):
    """Top-level names of every module ``tree`` imports (``from .x`` gives '.')."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield '.' if node.level else node.module.split('.')[0]


def test_no_script_imports_another_or_touches_sys_path():
    scripts = {osp.splitext(osp.basename(p))[0] for p in SCRIPTS}
    assert len(SCRIPTS) == len([e for e in EXPECTED if e.endswith('.py')])
    for path in SCRIPTS:
        with open(path) as f:
            text = f.read()
        tree = ast.parse(text)
        name = osp.relpath(path, ROOT)
        imports = set(imported_modules(tree))
        assert not imports & (scripts | {'.', 'tools', 'importlib'}), (name, imports & scripts)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) not in (('sys', 'path'), ('os', 'chdir')), name
        assert len(text.splitlines()) <= 150, name
