from .module_outputs_recorder import (ModuleOutputsRecorder, RecordError, disable_inplace,
                                      find_module)

__all__ = ['ModuleOutputsRecorder', 'RecordError', 'find_module', 'disable_inplace']
