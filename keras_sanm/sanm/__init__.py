"""SANM's parts: the noisy mask (`noisy_mask`), box sizes and label modulation
(`masking`), the reconstruction decoder (`decoder`, `transposed_conv`) and the
branch that adds them to any method's trainer (`branch`)."""
