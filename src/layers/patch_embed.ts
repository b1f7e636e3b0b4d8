// timm PatchEmbed with dynamic_img_pad: zero-pad bottom/right to a multiple of
// the patch size, then Conv2d(3, C, k=p, s=p, bias). Output stays NHWC, as
// timm returns it with dynamic_img_size (`vpm.patch_embed` hook: [1, Hp, Wp, C]).
import * as tf from '../tfjs.ts';

/**
 * PyTorch stores the kernel OIHW [C, 3, p, p]; TF.js conv2d wants HWIO
 * [p, p, 3, C]. Transposed once at load time.
 */
export function convKernelOIHWtoHWIO(w: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(w, [2, 3, 1, 0]);
}

/** pixels NCHW [B, 3, H, W] -> [B, Hp, Wp, C]. */
export function patchEmbed(pixels: tf.Tensor4D, kernelHWIO: tf.Tensor4D, bias: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const p = kernelHWIO.shape[0];
    const [, , H, W] = pixels.shape;
    let x = tf.transpose(pixels, [0, 2, 3, 1]) as tf.Tensor4D; // NHWC
    const padH = (p - (H % p)) % p, padW = (p - (W % p)) % p;
    if (padH || padW) x = tf.pad(x, [[0, 0], [0, padH], [0, padW], [0, 0]]);
    return tf.add(tf.conv2d(x, kernelHWIO, p, 'valid'), bias) as tf.Tensor4D;
  });
}
