"""``python -m recarena.simulator.cli``: the same as the ``recarena`` script."""

from recarena.simulator.cli import main

main()
