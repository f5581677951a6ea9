// The train layer: optimizer, schedules, checkpoints, metrics, options, datasets, the trainer loop.
