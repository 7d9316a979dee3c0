"""Test data for bench-ir.

Modules: ``io`` (image files <-> uint8 RGB arrays), ``crops`` (reference centre crop, bottom/right padding),
``synthesis`` (reference noise stream, sample degradations; pure functions), ``datasets`` (layouts under
--data-root, pairing rules, TaskDataset), ``sample`` (built-in sample data from scikit-image photos) and
``check`` (``bench-ir data check``). Import the submodule you need; this package imports nothing itself.
"""
