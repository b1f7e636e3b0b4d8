// Constant tables of the JPEG standard (ITU-T T.81) as libjpeg-turbo uses them.
//
// - NATURAL_ORDER: zigzag index -> natural (row-major) index, with 16 extra entries of 63 so that a
//   corrupt run length (k up to 63 + 15) lands on the last coefficient instead of outside the block
//   (the same padding as jpeg_natural_order in libjpeg-turbo src/jutils.c).
// - Standard Huffman tables of Annex K.3: libjpeg-turbo installs them for a sequential Huffman
//   file that has no DHT for tables 0/1 (Motion JPEG; src/jstdhuff.c, called from jinit_huff_decoder).
// - ARITH_TABLE: Table D.2 (Qe, Next_Index_LPS, Next_Index_MPS, Switch_MPS) in the packed form of
//   src/jaricom.c: (Qe << 16) | (NMPS << 8) | (SWITCH << 7) | NLPS, plus entry 113 for the fixed
//   probability 0.5 bin.

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

export const NATURAL_ORDER = new Int32Array(64 + 16).fill(63);
{
  // Walk the zigzag diagonals of the 8x8 block.
  let k = 0;
  for (let s = 0; s < 15; s++) {
    const cells: number[] = [];
    for (let r = 0; r < 8; r++) {
      const c = s - r;
      if (c >= 0 && c < 8) cells.push(r * 8 + c);
    }
    if (s % 2 === 0) cells.reverse(); // even diagonals run bottom-left to top-right
    for (const cell of cells) NATURAL_ORDER[k++] = cell;
  }
}

export interface HuffSpec { bits: Uint8Array; vals: Uint8Array } // bits[1..16] = code counts per length

export const STD_HUFF = {
  dc0: { bits: hex('0000010501010101010100000000000000'), vals: hex('000102030405060708090a0b') },
  dc1: { bits: hex('0000030101010101010101010000000000'), vals: hex('000102030405060708090a0b') },
  ac0: {
    bits: hex('000002010303020403050504040000017d'),
    vals: hex(
      '01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a34353637' +
        '38393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3' +
        'a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa',
    ),
  },
  ac1: {
    bits: hex('0000020102040403040705040400010277'),
    vals: hex(
      '000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a3536' +
        '3738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495969798999a' +
        'a2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa',
    ),
  },
} satisfies Record<string, HuffSpec>;

// Table D.2, 9 hex digits per state: Qe (4), Next_Index_LPS (2), Next_Index_MPS (2), Switch_MPS (1).
const D2 =
  '5a1d0101125860e020111410030080b1204003d81405001da1706000e519070006f1c08000361e090001a210a0000d230b00006090c00' +
  '0030a0d000010c0d05a7f0f0f13f25241002cf226110207c2712017b92813011822a1400cef2b15009a12d160072f2e170055c3018004' +
  '06311900303331a00240341b001b1361c00144381d000f5391e000b73b1f0008a3c20000683e210004e3f220003b20230002c210905ae' +
  '125251484c402603a0d412702ef143280261f442901f33452a019a8462b01518482c01177492d00e744a2e00bfb4b2f009f84d3000861' +
  '4e31007064f32005cd3033004de32340040f3235003633336002d434370025c3538001f83639001a4373a00160383b00125393c000f63' +
  'a3d000cb3b3e000ab3d3f0008f3d2005b12414114d0450420412c5143037d8524402fe853450293c544602379564701edf574801aa957' +
  '490174e484a01424484b0119c4a4c00f6b4a4d00d514b4e00bb64d4f00a404d3005832505114d1c58520438e595303bdd5a54034ee5b5' +
  '502eae5c560299a5d5702516564705570585914ca95f5a044d9605b03e22615c03824635d032b4635e02e175d56056a85f6014f466561' +
  '047e56662041cf676303c3d68640375e635d05231696604c0f6a67046396b680415e676305627696a150e76c6b04b856d67055976e6d0' +
  '504f6f6b05a106e6f15522706d059eb706f15a1d71710';
export const ARITH_TABLE = new Int32Array(114);
for (let i = 0; i < 114; i++) {
  const e = D2.slice(i * 9, i * 9 + 9);
  const qe = parseInt(e.slice(0, 4), 16), nlps = parseInt(e.slice(4, 6), 16);
  const nmps = parseInt(e.slice(6, 8), 16), sw = parseInt(e[8], 16);
  ARITH_TABLE[i] = (qe << 16) | (nmps << 8) | (sw << 7) | nlps;
}
