# The project's own TensorFlow ops (minicpmv_ops.cc: linear rows, tensor reader,
# LayerNorm/RMSNorm, softmax, bias+GELU, rotary; the file's header lists them),
# linked against the libtensorflow that @tensorflow/tfjs-node uses. Built by
# scripts/build-ops.mjs during `npm install`, only where tfjs-node's binding is present.
{
  'variables': {
    'tfjs_node_dir%': '<(module_root_dir)/../node_modules/@tensorflow/tfjs-node',
  },
  'targets': [{
    'target_name': 'minicpmv_ops',
    'sources': ['minicpmv_ops.cc'],
    'include_dirs': ['<(tfjs_node_dir)/deps/include'],
    'cflags_cc': ['-O3', '-std=c++17', '-fno-strict-aliasing', '-ffp-contract=off', '-pthread'],
    'ldflags': ['-pthread', '-Wl,-rpath,<(tfjs_node_dir)/deps/lib'],
    'libraries': ['-L<(tfjs_node_dir)/deps/lib', '-ltensorflow', '-ltensorflow_framework'],
  }],
}
