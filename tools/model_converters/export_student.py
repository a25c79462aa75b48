"""Write the student of a Distiller checkpoint as a plain mmdet checkpoint.

    python tools/model_converters/export_student.py work_dirs/frs/epoch_24.pth student.pth

The result loads with mmdet's own tools (tools/test.py, init_detector) and the
student's ordinary mmdet config.
"""
import argparse

from mmkd_det.apis import export_student


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='Distiller checkpoint (epoch_N.pth / iter_N.pth)')
    parser.add_argument('dst', help='output student checkpoint')
    args = parser.parse_args()
    out = export_student(args.src, args.dst)
    print(f'wrote {args.dst}: {len(out["state_dict"])} student tensors')


if __name__ == '__main__':
    main()
