"""saropt: deep learning on SAR and optical images with the Bridge Neural Network framework.

Subpackages: :mod:`saropt.data` (QXS-SAROPT reading, checks, splits), :mod:`saropt.build`
(datasets from your own scenes), :mod:`saropt.bnn` (BNN matching, papers 002/003),
:mod:`saropt.detect` (SAR ship detection with OSM/OSD pretraining), :mod:`saropt.fuse`
(weighted boxes fusion), :mod:`saropt.synth` (synthetic data); one ``saropt`` command line.
See README.md and docs/ARCHITECTURE.md.
"""

from importlib.metadata import version as _v

__version__ = _v("saropt")
