"""ddpmseg: label-efficient semantic segmentation with diffusion-model features.

The workflow's plan is the `plan` package: the config settled and checked once, every job's
parameters, and the results layout (`plan.layout`), every path the rules use. One module per
workflow stage below it: `synthetic` (embedded default dataset), `formats` (the readers: the
paper's layout and the annotation tools' formats, `formats.detect` for `format: auto`),
`datasets`, `resizing` and `splits` (validation, resizing, the prepared splits), `diffusion`
(ADM model building, loading and training; `adm_flags`: what each flag means, torch-free),
`backbones` (one module per feature source), `features` (their activations into Zarr stores),
`mlp` (the pixel classifier ensemble), `ensemble` (its training), `aggregation` (learned cell
mixing), `predict` (prediction), `votes` (voting, uncertainty), `metrics` (mIoU, calibration;
torch-free), `palette` (mask pictures), `tables` (aggregation over runs), `segmenter` (bundles
that segment new images).
"""

import warnings

# guided-diffusion 1.0.0 decorates with the deprecated torch.cuda.amp.custom_fwd/bwd.
warnings.filterwarnings("ignore", category=FutureWarning, module="guided_diffusion")
