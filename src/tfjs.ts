// TF.js as this project uses it: tfjs-core, with the chained tensor methods
// (x.reshape(), x.slice(), ...) registered. tfjs-core's Node bundle does not
// register them; the @tensorflow/tfjs union bundle does, as a side effect of
// being loaded (tfjs-node loads it too). Every module imports `tf` from here so
// the methods exist whichever backend runs.
import '@tensorflow/tfjs';

export * from '@tensorflow/tfjs-core';
