"""A small convolutional network for the 8 x 8 digits images, for ``kind = "torch"``.

``[problem] model = "py:cnn_digits.py:make:channels=4"`` (docs/torch.md): stflow calls
``make(in_features=64, classes=10, channels=4)`` once, seeded, and trains the returned
module's parameters on every agent. The 64 features of a row are the image's pixels
(``intercept = false`` in the config, so no column of ones is appended), reshaped to one
8 x 8 channel: Conv2d(1, channels, 3) -> ReLU -> flatten -> Linear(channels * 6 * 6, 10).
"""

from torch import nn


def make(in_features, classes, channels=4):
    side = round(in_features ** 0.5)
    if side * side != in_features:
        raise ValueError(f"in_features = {in_features} is not a square image; set "
                         "[problem] intercept = false for the 64 pixels of digits")
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),  # (B, 64) -> (B, 1, 8, 8)
        nn.Conv2d(1, channels, kernel_size=3),  # -> (B, channels, 6, 6)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * (side - 2) ** 2, classes),
    )
