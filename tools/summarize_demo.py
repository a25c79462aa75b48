"""Mean ± std over demo runs of different seeds (students only).

    python tools/summarize_demo.py work_dirs/demo work_dirs/demo_seed1 work_dirs/demo_seed2
"""
import argparse
import json
import os.path as osp
import statistics as st

from demo import METRICS as KEYS  # tools/demo.py, the script that wrote the results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', help='tools/demo.py --work-dir of each seed')
    args = parser.parse_args()
    vals = {}
    for wd in args.work_dirs:
        with open(osp.join(wd, 'results.json')) as f:
            for run in json.load(f):
                if run['name'] != 'teacher':
                    vals.setdefault(run['name'], []).append(
                        [100 * run['metrics']['coco/' + k] for k in KEYS])
    lines = ['| model | mAP | AP50 | AP75 | APs | APm | APl | per-run mAP |',
             '|---|---|---|---|---|---|---|---|']
    for name, rows in vals.items():
        cells = ' | '.join(f'{st.mean(c):.1f} ± {st.stdev(c) if len(c) > 1 else 0:.1f}'
                           for c in zip(*rows))
        lines.append(f'| {name} | {cells} | {", ".join(f"{r[0]:.1f}" for r in rows)} |')
    for name in vals:
        if name != 'student' and 'student' in vals:
            gains = [f[0] - s[0] for s, f in zip(vals['student'], vals[name])]
            lines += ['', f'{name} gain in mAP per run: ' +
                      ', '.join(f'{g:+.1f}' for g in gains) + f' (mean {st.mean(gains):+.1f}).']
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
