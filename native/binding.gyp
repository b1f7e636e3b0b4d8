# The project's own TensorFlow ops (minicpmv_ops.cc: linear rows, tensor reader,
# LayerNorm/RMSNorm, softmax, bias+GELU, rotary; the file's header lists them),
# linked against the libtensorflow that @tensorflow/tfjs-node uses. Built by
# scripts/build-ops.mjs during `npm install`, only where tfjs-node's binding is present.
{
  'variables': {
    # Where npm put tfjs-node: beside this package, or hoisted into the project that installed it.
    'tfjs_node_dir%': '<!(node -p "require(\'path\').dirname(require.resolve(\'@tensorflow/tfjs-node/package.json\'))")',
  },
  'targets': [{
    'target_name': 'minicpmv_ops',
    'sources': ['minicpmv_ops.cc'],
    'include_dirs': ['<(tfjs_node_dir)/deps/include'],
    'cflags_cc': ['-O3', '-std=c++17', '-fno-strict-aliasing', '-ffp-contract=off', '-pthread'],
    'ldflags': ['-pthread', '-Wl,-rpath,<(tfjs_node_dir)/deps/lib'],
    'libraries': ['-L<(tfjs_node_dir)/deps/lib', '-ltensorflow', '-ltensorflow_framework'],
  }, {
    # fd 2 to /dev/null and back around loading libtensorflow (native/quiet.cc); no TensorFlow dependency.
    'target_name': 'minicpmv_quiet',
    'sources': ['quiet.cc'],
    'cflags_cc': ['-O2'],
  }],
}
