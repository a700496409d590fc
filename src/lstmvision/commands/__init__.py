"""The ``lstmvision`` subcommands beyond LightningCLI's fit/validate/test/predict.

Each module holds one subcommand whose ``main(argv)`` the ``COMMANDS`` table of :mod:`lstmvision.cli`
names; ``configs`` also resolves ``--config NAME`` to a packaged configuration for every command.
"""

__all__: list[str] = []
