"""``python -m wsseg``: the ``wsseg`` command (torchrun starts it this way)."""

from wsseg.cli import main

main()
