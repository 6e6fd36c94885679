"""Independent NumPy transcription of TV-L1 (seed 002, Algorithm 1, Eq. 3-5, 10, 11), float64.

Written from the paper's equations, index by index, without TensorFlow or tfvideo code. Arrays are
``(H, W)``; ``i`` indexes columns (x, width W) and ``j`` rows (y, height H), as in the paper.
"""

import numpy as np


def grad_central(I):
    """Eq. 3: (I[i+1] - I[i-1]) / 2 for 1 < i < W (1-based), else 0."""
    gx = np.zeros_like(I)
    gy = np.zeros_like(I)
    gx[:, 1:-1] = (I[:, 2:] - I[:, :-2]) / 2.0
    gy[1:-1, :] = (I[2:, :] - I[:-2, :]) / 2.0
    return gx, gy


def grad_forward(u):
    """Eq. 4: u[i+1] - u[i] for 1 <= i < W, 0 on the last column (and row)."""
    gx = np.zeros_like(u)
    gy = np.zeros_like(u)
    gx[:, :-1] = u[:, 1:] - u[:, :-1]
    gy[:-1, :] = u[1:, :] - u[:-1, :]
    return gx, gy


def div_backward(p1, p2):
    """Eq. 5: p[i] - p[i-1] inside, p[i] on the first, -p[i-1] on the last column (rows likewise)."""
    H, W = p1.shape
    dx = np.zeros_like(p1)
    dx[:, 1:-1] = p1[:, 1:-1] - p1[:, :-2]
    dx[:, 0] = p1[:, 0]
    dx[:, -1] = -p1[:, -2]
    dy = np.zeros_like(p2)
    dy[1:-1, :] = p2[1:-1, :] - p2[:-2, :]
    dy[0, :] = p2[0, :]
    dy[-1, :] = -p2[-2, :]
    return dx + dy


def warp_bilinear(I, u1, u2):
    """Eq. 10: I(x + u) by bilinear interpolation, sample positions clamped to the image."""
    H, W = I.shape
    jj, ii = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    x = np.clip(ii + u1, 0, W - 1)
    y = np.clip(jj + u2, 0, H - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, W - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, H - 2)
    ax = x - x0
    ay = y - y0
    return (
        I[y0, x0] * (1 - ax) * (1 - ay)
        + I[y0, x0 + 1] * ax * (1 - ay)
        + I[y0 + 1, x0] * (1 - ax) * ay
        + I[y0 + 1, x0 + 1] * ax * ay
    )


def tvl1_single_scale(I0, I1, warps, iterations, tau=0.25, lbda=0.15, theta=0.3, eps=1e-12, u1=None, u2=None):
    """Algorithm 1 at one scale, starting from u0 = (u1, u2) (zero by default). Returns (u1, u2)."""
    I0 = np.asarray(I0, np.float64)
    I1 = np.asarray(I1, np.float64)
    u1 = np.zeros_like(I0) if u1 is None else np.asarray(u1, np.float64).copy()
    u2 = np.zeros_like(I0) if u2 is None else np.asarray(u2, np.float64).copy()
    p11 = np.zeros_like(I0)
    p12 = np.zeros_like(I0)
    p21 = np.zeros_like(I0)
    p22 = np.zeros_like(I0)
    I1x, I1y = grad_central(I1)
    for _ in range(warps):
        I1w = warp_bilinear(I1, u1, u2)
        gx = warp_bilinear(I1x, u1, u2)
        gy = warp_bilinear(I1y, u1, u2)
        g2 = gx**2 + gy**2
        u01, u02 = u1.copy(), u2.copy()
        for _ in range(iterations):
            rho = gx * (u1 - u01) + gy * (u2 - u02) + I1w - I0
            v1 = u1.copy()
            v2 = u2.copy()
            case1 = rho < -lbda * theta * (g2 + eps)
            case2 = rho > lbda * theta * (g2 + eps)
            case3 = ~case1 & ~case2
            v1[case1] += lbda * theta * gx[case1]
            v2[case1] += lbda * theta * gy[case1]
            v1[case2] -= lbda * theta * gx[case2]
            v2[case2] -= lbda * theta * gy[case2]
            v1[case3] -= rho[case3] * gx[case3] / (g2[case3] + eps)
            v2[case3] -= rho[case3] * gy[case3] / (g2[case3] + eps)
            u1 = v1 + theta * div_backward(p11, p12)
            u2 = v2 + theta * div_backward(p21, p22)
            u1x, u1y = grad_forward(u1)
            u2x, u2y = grad_forward(u2)
            n1 = 1 + tau / theta * np.sqrt(u1x**2 + u1y**2 + eps)
            n2 = 1 + tau / theta * np.sqrt(u2x**2 + u2y**2 + eps)
            p11 = (p11 + tau / theta * u1x) / n1
            p12 = (p12 + tau / theta * u1y) / n1
            p21 = (p21 + tau / theta * u2x) / n2
            p22 = (p22 + tau / theta * u2y) / n2
    return u1, u2
