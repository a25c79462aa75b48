"""Describe and pair the recorded levels of a teacher and a student whose necks differ
(level count, strides, widths): the text of the build-time shape errors.

Shape shorthand: each recorded level is ``(N, C, H, W)``; shapes come from the
Distiller's build-time probe (one square zero image through both detectors), so
two levels of equal ``H, W`` have equal strides.
"""
from typing import List, Sequence, Tuple


def format_levels(shapes: Sequence[Sequence[int]]) -> str:
    """``'[0: (C, H, W), 1: ...]'`` of per-level ``(N, C, H, W)`` shapes.

    Args:
        shapes (Sequence): per-level shapes (``torch.Size`` or tuples), batch first.

    Returns:
        str: the (C, H, W) of each level, after its position in the list.
    """
    return '[' + ', '.join(f'{i}: {tuple(s[1:])}' for i, s in enumerate(shapes)) + ']'


def pair_equal(s_keys: Sequence, t_keys: Sequence) -> List[Tuple[int, int]]:
    """Pair the student and teacher levels whose keys (sizes, strides) are equal.

    Args:
        s_keys (Sequence): one hashable key per student level.
        t_keys (Sequence): one per teacher level.

    Returns:
        list[tuple[int, int]]: ``(student position, teacher position)`` for each key
        that occurs exactly once on each side, in student order (one-to-one only:
        the deep levels of a small probe image can all be 1 x 1).
    """
    s_keys, t_keys = list(s_keys), list(t_keys)
    return [(i, t_keys.index(k)) for i, k in enumerate(s_keys)
            if s_keys.count(k) == 1 and t_keys.count(k) == 1]


def pair_levels_by_size(s_shapes: Sequence[Sequence[int]],
                        t_shapes: Sequence[Sequence[int]]) -> List[Tuple[int, int]]:
    """Student and teacher levels of the same ``H, W`` (the same stride).

    Args:
        s_shapes (Sequence): student per-level ``(N, C, H, W)``.
        t_shapes (Sequence): teacher per-level ``(N, C, H, W)``.

    Returns:
        list[tuple[int, int]]: ``(student position, teacher position)`` for each
        ``H, W`` that occurs exactly once on each side, in student order.
    """
    return pair_equal([tuple(s[2:]) for s in s_shapes], [tuple(t[2:]) for t in t_shapes])


def level_pairing_hint(s_shapes: Sequence[Sequence[int]], t_shapes: Sequence[Sequence[int]]) -> str:
    """The fix a level-count or size mismatch error proposes.

    Where some student levels have a teacher level of the same ``H, W``, names
    the recorder's ``levels`` / ``teacher_levels`` that pair them (positions in
    the recorded lists: a recorder that already selects levels maps them
    through its own lists); otherwise proposes ``resize_student=True`` with
    equal level counts.

    Args:
        s_shapes (Sequence): student per-level ``(N, C, H, W)``.
        t_shapes (Sequence): teacher per-level ``(N, C, H, W)``.

    Returns:
        str: one sentence.
    """
    pairs = pair_levels_by_size(s_shapes, t_shapes)
    if pairs:
        return (f'Pair the levels of equal stride (equal H, W) in the recorder: '
                f'levels={[i for i, _ in pairs]}, teacher_levels={[j for _, j in pairs]} '
                f'(positions in the lists above).')
    return ('No level has the same H, W on both sides: record the same number of levels '
            'on both (recorder `levels` / `teacher_levels`) and set resize_student=True on '
            'the loss to resize the student to the teacher\'s H, W.')
