// tfjs-core registers the chained tensor methods (x.reshape(...), x.slice(...))
// at run time; this brings their type declarations into the compilation.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
