"""Figures used by reports and analyses (matplotlib; import submodules directly, e.g.
:mod:`neurorl.plotting.decoding`)."""
