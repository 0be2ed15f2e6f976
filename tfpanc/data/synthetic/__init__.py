"""Training images synthesised on the fly from label maps (SynthSeg-style; issue #17).

A model trained on tfpanc's phantom alone finds almost nothing on real scans:
the phantom's look is one fixed appearance. SynthSeg (Billot et al.) trains
on images rendered from label maps with every appearance parameter drawn at
random per sample, and then segments real scans of contrasts it never saw.
This package does that for the phantom's anatomy:

* :mod:`.bank`: the label maps, phantom tissue maps (34 tissues) painted
  once on a 1.25 x 1.25 x 1.5 mm slab around each pancreas
  (``--synthetic_bank``, built on first use);
* :mod:`.shapes`: real pancreas label maps from ``--shape_dir`` pasted in
  place of the phantom gland;
* :mod:`.intensity`: per-sample tissue HU, a coupled contrast-phase prior or
  fully random;
* :mod:`.slice_generator`: the renderer (slice planes, deformation, slice
  thickness, PSF, noise, bias, window) and the ladder's steps;
* :mod:`.synthetic_slice_sampler`: the renderer in the sampler interface
  that :mod:`tfpanc.data.pipeline` wraps (tf.data or PyDataset);
* :mod:`.training`: what cai's recipe calls for ``--train_images=synthetic``.

Scoring on real data: ``python -m tfpanc.evaluate_real``; the ablation
ladder: ``tools/synthetic_ladder.py`` with ``configs/synthetic/``.
"""
