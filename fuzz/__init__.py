"""Coverage-guided fuzzing with atheris (``python -m fuzz``, ``make fuzz``).

Nothing here imports the agent at import time: ``python -m fuzz`` must import it under
``atheris.instrument_imports`` for the coverage that guides the fuzzer.
"""
