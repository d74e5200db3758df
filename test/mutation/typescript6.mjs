// StrykerJS's TypeScript checker needs the compiler API, which TypeScript 7 (the native compiler
// this project builds with) does not have yet. The TypeScript team ships the 6.x compiler as
// @typescript/typescript6 for such tools: this hook, loaded into Stryker's own process (`npm run
// mutate`) and its checkers' (stryker.config.mjs, checkerNodeArgs), gives them that package where
// they import 'typescript'. The test runners and the build do not load it.
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, nextResolve) {
    return nextResolve(specifier === 'typescript' ? '@typescript/typescript6' : specifier, context);
  },
});
