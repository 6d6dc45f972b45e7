"""ddpmseg: label-efficient semantic segmentation with diffusion-model features.

One module per workflow stage: `synthetic` (embedded default dataset), `datasets`
(validation and resizing), `diffusion` (ADM model building, loading and training),
`features` (decoder activations into Zarr stores), `mlp` (pixel classifier ensemble),
`ensemble` (its training), `predict` (prediction), `votes` (voting, uncertainty),
`metrics` (mIoU, calibration), `tables` (aggregation).
"""

import warnings

# guided-diffusion 1.0.0 decorates with the deprecated torch.cuda.amp.custom_fwd/bwd.
warnings.filterwarnings("ignore", category=FutureWarning, module="guided_diffusion")
