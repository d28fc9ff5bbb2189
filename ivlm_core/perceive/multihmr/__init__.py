"""Multi-HMR (Baradel et al. 2024): whole-body SMPL-X of every person in a photo, camera-aware, loaded from its
release checkpoint without the research code. Licence of the weights: CC BY-NC-SA 4.0 (the user downloads them).

configuration_multihmr (sizes), modeling_multihmr (the network), convert_multihmr (reading and mapping a release),
estimator (photo + intrinsics -> people -> a first body estimate for the fit).
"""
