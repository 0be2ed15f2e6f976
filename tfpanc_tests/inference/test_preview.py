"""predict --preview: three views through the pancreas with the mask outline, read back as a PNG."""

import matplotlib.image
import nibabel as nib
import numpy as np

from tfpanc import cli, predict
from tfpanc.inference.preview import slice_centre, write_preview


def _red(png):
    rgb = png[..., :3]
    return (rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)


def test_preview_shows_the_image_and_the_outline_at_the_mask_centre(tmp_path):
    image = np.random.default_rng(0).normal(40, 60, (48, 40, 20)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[30:40, 10:18, 4:9] = 1
    assert slice_centre(mask) == (34, 14, 6) and slice_centre(np.zeros((4, 6, 8))) == (2, 3, 4)
    write_preview(tmp_path / "p.png", image, mask, (1.0, 1.0, 2.5), title="case_a")
    png = matplotlib.image.imread(str(tmp_path / "p.png"))
    assert png.shape[0] > 200 and png.shape[1] > 600
    assert png[..., :3].std() > 0.1  # not blank
    assert _red(png).sum() > 50  # the outline is drawn
    write_preview(tmp_path / "empty.png", image, np.zeros_like(mask), (1.0, 1.0, 2.5))
    assert _red(matplotlib.image.imread(str(tmp_path / "empty.png"))).sum() == 0


def test_predict_writes_the_preview_with_the_mask(tmp_path):
    from tfpanc.methods.cai.random_run import write_random_run

    run = write_random_run(tmp_path / "run", "pnet_msa", num_units=1, filters=2)
    ct = np.random.default_rng(0).integers(-200, 300, (40, 40, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(ct, np.diag([1.5, 1.5, 2.5, 1])), str(tmp_path / "ct.nii.gz"))
    code = cli.invoke(predict.define_flags, predict.main,
                      [f"--model_dir={run}", f"--input={tmp_path / 'ct.nii.gz'}", f"--output={tmp_path / 'm.nii.gz'}",
                       f"--preview={tmp_path / 'out' / 'preview.png'}", "--nobody_crop"])
    assert code == 0
    png = matplotlib.image.imread(str(tmp_path / "out" / "preview.png"))
    assert png.shape[1] > 600 and png[..., :3].std() > 0.05
    assert (tmp_path / "m.nii.gz").exists()
