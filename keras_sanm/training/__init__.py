"""The training machinery every method shares: the trainer base (`trainer`), its
input pipeline (`input`), saving (`saving`, `seed_state`) and label quality
(`label_quality`); two networks and their turns (`two_networks`,
`alternating`, `turn_loop`, `phases`); losses, optimizers, loss scaling,
mixup and label refinement; epoch callbacks (`callbacks`) and checkpoints
(`backup`)."""
