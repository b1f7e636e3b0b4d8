// The one error type of the JPEG decoder; src/image/jpeg.ts turns it into an ImageError naming the file.

/** Why decoding stopped. `truncated` = Pillow's "image file is truncated"; `corrupt` = libjpeg-turbo's error_exit. */
export class JpegStop extends Error {
  constructor(readonly kind: 'truncated' | 'corrupt', message: string) {
    super(message);
    this.name = 'JpegStop';
  }
}
