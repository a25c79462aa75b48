from .build import build_distiller, build_distiller_and_batch, build_loader, first_batch
from .checkpoint import CheckpointCheckHook, add_checkpoint_checks, fit_checkpoint
from .cli import (add_cfg_options_arg, add_distiller_config_args, add_distiller_options_arg,
                  add_image_size_arg, add_json_arg, add_keep_heap_arg, add_launcher_args,
                  add_teacher_ckpt_arg, apply_keep_heap, default_work_dir, doc_parser,
                  finish_distributed, load_config, parse_runner_args, read_json, runner_parser,
                  set_local_rank, write_json)
from .cpu_heap import keep_freed_memory
from .dataset_check import (DatasetCheckError, DatasetReport, check_datasets, is_main_process_env,
                            run_dataset_check)
from .export import export_student, student_checkpoint
from .preflight import PreflightError, check_config, missing_data

__all__ = [
    'build_distiller', 'build_distiller_and_batch', 'build_loader', 'first_batch', 'export_student',
    'student_checkpoint', 'PreflightError', 'check_config', 'missing_data', 'keep_freed_memory',
    'add_cfg_options_arg', 'add_distiller_config_args', 'add_distiller_options_arg',
    'add_image_size_arg', 'add_json_arg', 'add_keep_heap_arg', 'add_launcher_args',
    'add_teacher_ckpt_arg', 'apply_keep_heap', 'default_work_dir', 'doc_parser',
    'finish_distributed', 'load_config', 'parse_runner_args', 'runner_parser', 'set_local_rank',
    'write_json', 'read_json', 'CheckpointCheckHook', 'add_checkpoint_checks', 'fit_checkpoint',
    'DatasetCheckError', 'DatasetReport', 'check_datasets', 'is_main_process_env',
    'run_dataset_check'
]
