// StrykerJS for `npm run mutate` (not part of npm test): mutants in the modules where a wrong
// answer hurts most, each run against the test files that cover it (per-test coverage; the tap
// runner counts each file as one test). Stryker instruments the TypeScript sources in a sandbox,
// the build command compiles them there, and the tap runner runs the compiled test files.
// Left out, and why: the control-plane, helm and packaging suites (they do not reach these
// modules' logic beyond what the files below do, and each costs tens of seconds per run), and
// check-overload.test.ts (a 20 s burst whose timing a mutated, instrumented build cannot hold).
import { fileURLToPath } from 'node:url';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: [
    'sidecar/check/**/*.ts',
    'sidecar/http/**/*.ts',
    'sidecar/probe/**/*.ts',
    'sidecar/config.ts',
    'sidecar/discovery/kubernetes/peers-from-objects.ts',
  ],
  testRunner: 'tap',
  tap: {
    testFiles: [
      'dist/test/verdict.test.js',
      'dist/test/retry-policy.test.js',
      'dist/test/check-request.test.js',
      'dist/test/check-body.test.js',
      'dist/test/config.test.js',
      'dist/test/readme.test.js',
      'dist/test/discovery-peers.test.js',
      'dist/test/check-memo.test.js',
      'dist/test/check-integration.test.js',
      'dist/test/check-faults.test.js',
      'dist/test/check-departed.test.js',
      'dist/test/probe-tls.test.js',
      'dist/test/openapi.test.js',
      'dist/test/sidecar-process.test.js',
      'dist/test/ops-server.test.js',
      'dist/test/tls-material.test.js',
      'dist/test/peer-channel.test.js',
      'dist/test/probe.test.js',
      'dist/test/probe-timeouts.test.js',
      'dist/test/config-bounds.test.js',
      'dist/test/peers-from-objects.test.js',
      'dist/test/retry-policy-window.test.js',
      'dist/test/respond.test.js',
      'dist/test/check-request-errors.test.js',
      'dist/test/api-server.test.js',
      'dist/test/checker.test.js',
      'dist/test/fan-out.test.js',
      'dist/test/discovery-kubernetes-sync.test.js',
      'dist/test/unexpected-guards.test.js',
    ],
  },
  buildCommand: 'npx tsc -p tsconfig.json',
  checkers: ['typescript'],
  // The checker runs on the TypeScript 6 compiler API (typescript6.mjs says why); the build on TypeScript 7.
  checkerNodeArgs: ['--import', fileURLToPath(new URL('./typescript6.mjs', import.meta.url))],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  // Stryker splits this between TypeScript checkers and test runners (2 + 1), and turns the
  // checkers into runners once every mutant is type-checked: three runners on a 2-core machine,
  // whose test files mostly wait on sockets and timers.
  concurrency: 3,
  // Results are kept per mutant and reused while neither the mutant's code nor its tests change.
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  timeoutMS: 10000,
  // The sandbox needs the repository's tooling paths (test/tooling/versions.env marks the root).
  // helm/ holds symlinks Stryker cannot copy, and no test here needs it.
  ignorePatterns: ['dist', 'bench-results', '.stryker-tmp', 'reports', 'helm'],
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp',
};
