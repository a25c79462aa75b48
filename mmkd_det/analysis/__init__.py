"""Analysis tools of mmkd_det: the logic behind ``tools/analysis_tools`` and
``tools/misc``.

Modules (imported on demand; none is loaded by ``import mmkd_det``):

* :mod:`.logs`: read what a training wrote (evaluations, final checkpoint) and
  start a training in a subprocess;
* :mod:`.timing`: a Distiller's training step and its parts, timed
  interleaved, with page faults and peak memory;
* :mod:`.cost`: time and memory of a distillation step against its parts;
* :mod:`.throughput`: images/s and peak memory at full size, random weights;
* :mod:`.mmrazor_step`: the Distiller's PKD step against mmrazor's;
* :mod:`.grad_norms`: gradient norm of each loss term on the student;
* :mod:`.recordable`: every recordable module of a detector, its output shapes
  and strides, and a teacher / student neck comparison;
* :mod:`.masks`: heatmaps of the distillation masks over images;
* :mod:`.skd_memory`: memory of structured KD's non-local relation matrices;
* :mod:`.soak`: resident memory over a long distillation training (memory soak);
* :mod:`.benchmark`: run matrices (built-in presets or a user's file), the
  resumable runner and the result tables and plots;
* :mod:`.demo`: the end-to-end synthetic demo (README command 1).
"""
