// The library API in a few lines (run: npx tsx examples/library.ts [MODEL_DIR]; plain `node` runs the same
// code as a .js/.mjs file). In this repository the package name resolves to this package's own build.
import {
  BUNDLED_MODEL_DIR, ChatSession, describeBackend, Hooks, initBackend, loadImage, loadModel, loadTokenizer, preprocess,
} from 'minicpmv-ts';

const dir = process.argv[2] ?? BUNDLED_MODEL_DIR; // an HF checkpoint directory or a converted one
console.log(describeBackend(await initBackend())); // 'tensorflow' when it loads, else 'cpu'
const model = loadModel(dir);
const tokenizer = loadTokenizer(dir);
const image = loadImage(new URL('./red_ball.png', import.meta.url).pathname);

// Chat: the image is encoded once, the history is kept across turns.
const session = new ChatSession(model, tokenizer, image);
const r = session.ask('What is in the image?', { mode: 'greedy', maxNewTokens: 8, onText: (s) => process.stdout.write(s) });
console.log(`\n${r.tokens.length} tokens, prefill ${r.timings.prefillTokPerS.toFixed(0)} tok/s`);
const again = session.ask('What colour is it?', { mode: 'greedy', maxNewTokens: 8 });
console.log(again.answer);

// Every activation by PyTorch module path: here the output of each decoder layer.
const hooks = new Hooks({
  select: (key) => /^llm\.model\.layers\.\d+$/.test(key),
  onActivation: (key, t) => console.log(key, t.shape),
});
model.run({ pixelValues: preprocess(image), inputIds: r.prompt.ids, imageBounds: r.prompt.bounds, hooks }).dispose();

session.dispose();
model.dispose();
