"""The paper's experiments beyond Table 2, one module each: per-class IoU (its Appendix D),
fewer labels (Table 4), stochastic feature extraction (Table 5), robustness to corruptions
(Figure 6), and how much diffusion training the features need. Each module turns the runs'
outputs into its table and figure; the rules are in rules/experiments/<name>.smk."""
