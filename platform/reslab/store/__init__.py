"""The experiment folder on its storage (a local path or a cloud URI): file I/O, the driver lock and the
seal over Ray Tune's state."""
