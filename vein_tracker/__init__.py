"""vein_tracker: photo-based tracking of sclerotherapy for leg spider veins."""

__version__ = "0.1.0"
#: Bumped whenever a change can alter any measured number; stored with every analysis.
ALGORITHM_VERSION = "1.9.18"
