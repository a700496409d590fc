"""lstmvision.layers."""

__all__: list[str] = []
