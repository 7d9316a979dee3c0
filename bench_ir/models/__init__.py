"""Architectures, one module each (``mirage``, ``identity``, ...) plus shared ``layers``.

Nothing is imported here: model cards name their factory as ``bench_ir.models.<module>:<callable>`` and
:func:`bench_ir.checkpoints.create_model` imports that module only when the model is built.
"""
