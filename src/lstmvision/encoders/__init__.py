"""lstmvision.encoders."""

__all__: list[str] = []
