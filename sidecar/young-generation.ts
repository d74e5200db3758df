// V8's young generation held at its initial size for the whole run.
//
// Why: by default V8 doubles it, up to 16 MiB semi-spaces, as a burst of checks allocates, and
// the pages stay resident afterwards. Held small, a burst costs a few more scavenges (a check's
// garbage dies young, so each is short) and far less memory: measured by `npm run bench` on
// Node 26, see the README's bench table (peak RSS through 1,000 concurrent checks; idle RSS).
// Why here and not a node flag: --max-semi-space-size is read once, when the heap is set up, so
// only the command line could pass it, and the footprint would depend on how the program was
// started (the image, npm start, a test). V8 reads the growth factor each time it considers
// growing the young generation, so setting it first thing holds for the whole run.
import { setFlagsFromString } from 'node:v8';

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
