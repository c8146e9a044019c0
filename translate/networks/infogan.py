"""InfoGAN's generator and its discriminator with the auxiliary head Q (Chen et al. 2016, arXiv:1606.03657).

Both are DCGAN's networks (translate.networks.dcgan), so they work from 32 to 256 px on 1 or 3 channels; the
paper's MNIST pair (its Table 1: two convolutions and two fully connected layers at 28 px) is the same design at
one size.

Generator: the latent it sees is [z, one-hot(c) of each categorical code, each continuous code], (N, noise + ΣK +
continuous), fed to DCGAN's generator. Its inputs are named (`code_names`): `z`, then `cat` for a single
categorical code (`cat1`, `cat2`, ... for several) and `c1`, `c2`, ... for the continuous codes, one value per
sample each (int64 category indices, float32 values).

Discriminator: DCGAN's convolutional body φ(x) feeds two heads, D's score and Q(c|x). "Q shares all convolutional
layers with D, and there is one final fully connected layer to output parameters for the conditional
distribution Q(c|x)" (section 5): here, as in the paper's Table 1, FC 128-BN-lReLU then the parameters, namely
the logits of every categorical code and the mean (and, with `learned_std`, the log standard deviation) of every
continuous one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.networks.dcgan import DCGANDiscriminator, DCGANGenerator

Q_HIDDEN = 128  # the paper's Table 1: "FC.128-BN-lRELU" before Q's output layer


def code_names(categorical: tuple[int, ...], continuous: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input names of the codes: (categorical names, continuous names), e.g. (("cat",), ("c1", "c2"))."""
    if len(categorical) == 1:
        cat: tuple[str, ...] = ("cat",)
    else:
        cat = tuple(f"cat{i + 1}" for i in range(len(categorical)))
    return cat, tuple(f"c{i + 1}" for i in range(continuous))


class InfoGANGenerator(nn.Module):
    """z (N, noise_dim) and the codes by name ((N,) each) → (N, channels, image_size, image_size) in [-1, 1]."""

    def __init__(
        self,
        noise_dim: int = 62,
        channels: int = 1,
        image_size: int = 32,
        *,
        categorical: tuple[int, ...] = (10,),
        continuous: int = 2,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        self.noise_dim, self.categorical, self.continuous = noise_dim, tuple(categorical), continuous
        self.cat_names, self.cont_names = code_names(self.categorical, continuous)
        latent = noise_dim + sum(self.categorical) + continuous
        # DCGAN's layers, so the parameters are named as a DCGAN generator's (layers.N.*).
        self.layers = DCGANGenerator(latent, channels, image_size, base_channels=base_channels).layers

    def forward(self, z: Tensor, **codes: Tensor) -> Tensor:
        """The argument names are the generator's input names (recipes.infogan.generator_inputs)."""
        expected = {*self.cat_names, *self.cont_names}
        if set(codes) != expected:
            raise ValueError(f"the generator takes the codes {', '.join(sorted(expected))}, got {', '.join(codes)}")
        parts = [z]
        for name, k in zip(self.cat_names, self.categorical, strict=True):
            values = torch.arange(k, device=z.device)
            parts.append((codes[name].long()[:, None] == values).to(z.dtype))  # one-hot, (N, K): Equal in ONNX
        parts += [codes[name].to(z.dtype)[:, None] for name in self.cont_names]  # (N, 1) each
        return self.layers(torch.cat(parts, dim=1)[:, :, None, None])


class InfoGANDiscriminator(nn.Module):
    """(N, channels, S, S) → (D's logits (N,), Q's parameters (N, ΣK + continuous · (2 if learned_std else 1)))."""

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 32,
        *,
        categorical: tuple[int, ...] = (10,),
        continuous: int = 2,
        learned_std: bool = False,
        base_channels: int = 64,
        minibatch_std: bool = False,
        minibatch_kernels: int = 0,
    ) -> None:
        super().__init__()
        self.categorical, self.continuous, self.learned_std = tuple(categorical), continuous, learned_std
        # Batch norm in D, as DCGAN (the paper's Table 1). The body and the score are DCGAN's, named as there.
        body = DCGANDiscriminator(
            channels,
            image_size,
            base_channels=base_channels,
            norm="batch",
            minibatch_std=minibatch_std,
            minibatch_kernels=minibatch_kernels,
        )
        self.features, self.minibatch, self.score = body.features, body.minibatch, body.score
        dim = body.score.in_features - minibatch_kernels  # φ(x): (N, dim)
        outputs = sum(self.categorical) + continuous * (2 if learned_std else 1)
        self.q = nn.Sequential(
            nn.Linear(dim, Q_HIDDEN, bias=False),
            nn.BatchNorm1d(Q_HIDDEN),
            nn.LeakyReLU(0.2, True),
            nn.Linear(Q_HIDDEN, outputs),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        phi = self.features(x)
        scored = phi if self.minibatch is None else torch.cat([phi, self.minibatch(phi)], dim=1)
        return self.score(scored).squeeze(1), self.q(phi)

    def posterior(self, q: Tensor) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """Q's parameters split: the logits of each categorical code ((N, K) each), the continuous codes' means
        (N, continuous) and their log standard deviations (N, continuous), None when the deviation is fixed."""
        sizes = [*self.categorical, self.continuous, self.continuous if self.learned_std else 0]
        *logits, mean, log_std = q.split(sizes, dim=1)
        return logits, mean, log_std if self.learned_std else None
