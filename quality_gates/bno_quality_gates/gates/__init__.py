"""The gate programs: each runnable as ``python -m bno_quality_gates.gates.NAME`` with arguments.

Each prints one ``GATE-METRICS {json}`` line that the runner records, and exits 0 (passed), 1 (failed) or
3 (could not run: the runner maps it to ``errored`` through ``errored_exit_codes``). Their settings come
from the gate's ``params`` in ``gates.yaml`` (``$GATE_PARAMS``), overridable on the command line.
"""
