"""The benchmark: run matrices (:mod:`.matrix`), the resumable runner
(:mod:`.runner`) and the result tables and plots (:mod:`.report`).

The command line is ``tools/analysis_tools/benchmark.py``.
"""
from .matrix import (DEFAULT_SEEDS, PRESETS, RUNS, MatrixError, RunSpec, load_matrix, run_dir,
                     run_seeds, spec_teachers, teacher_runs)
from .report import KINDS, kinds_present, plot, plot_history, report, table, write
from .runner import (ResultsError, baseline, check_data, collect, finished, finished_or_earlier,
                     load_earlier, load_run_config, needs_teacher, run_matrix, synthetic_presets,
                     teacher_results, train_one)

__all__ = [
    'DEFAULT_SEEDS', 'PRESETS', 'RUNS', 'MatrixError', 'RunSpec', 'load_matrix', 'run_dir',
    'run_seeds', 'spec_teachers', 'teacher_runs', 'KINDS', 'kinds_present', 'plot', 'plot_history',
    'report', 'table', 'write', 'ResultsError', 'baseline', 'check_data', 'collect', 'finished',
    'finished_or_earlier', 'load_earlier', 'load_run_config', 'needs_teacher', 'run_matrix',
    'synthetic_presets', 'teacher_results', 'train_one'
]
