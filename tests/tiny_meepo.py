"""Command-line overrides that shrink ``meepo_demo.yaml`` to a seconds-long MEEPO for tests."""

TINY_MEEPO_ARGS = [
    "--model.init_args.model.init_args.enc_depths=[1, 1]",
    "--model.init_args.model.init_args.enc_channels=[8, 16]",
    "--model.init_args.model.init_args.dec_depths=[1]",
    "--model.init_args.model.init_args.dec_channels=[8]",
    "--model.init_args.model.init_args.strides=[2]",
    "--model.init_args.model.init_args.grid_size=0.1",
    "--data.init_args.grid_size=0.1",
    "--data.init_args.sphere_crop_points=4000",
    "--model.init_args.print_class_table=false",
]
