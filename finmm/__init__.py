"""finmm: pretrain, finetune and serve one multimodal Transformer for finance, on Ray.

This package is the composition root: it joins the config sections that `actors`, `model`,
`cluster` and `serve` own into one `ray_config.yaml`, and holds the `finmm` command line.
"""

__version__ = "0.1.0"
