import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

/** Every Node built-in, bare (`fs`, `fs/promises`) and prefixed (`node:fs`). */
const NODE_BUILT_INS = ['node:*', ...builtinModules, ...builtinModules.map((name) => `${name}/*`)];

/** Outside src/workflows, the modules workflow code may import values from; linted as workflow code. */
const WORKFLOW_VALUE_IMPORTS = ['src/jobs/job.ts', 'src/jobs/transitions.ts', 'src/jobs/failures.ts'];

/** A relative import out of src/workflows to anything but those modules. */
const WORKFLOW_RELATIVE_IMPORT_OUTSIDE = `^\\.\\./(?!(${WORKFLOW_VALUE_IMPORTS.map((file) =>
  file.replace(/^src\//, '').replace(/\.ts$/, ''),
).join('|')})\\.js$)`;

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.tools', '.data', 'test/fixtures'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's describe/test return promises the runner itself awaits.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Everything Temporal bundles into the deterministic sandbox: the workflows, and the only modules
    // they may import values from (the rule below holds them to these). No Node built-ins, by either name.
    files: ['src/workflows/**/*.ts', ...WORKFLOW_VALUE_IMPORTS],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NODE_BUILT_INS, message: 'Workflows must stay deterministic: no Node built-ins.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Workflows must not read the environment.' },
      ],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NODE_BUILT_INS, message: 'Workflows must stay deterministic: no Node built-ins.' },
            {
              regex: WORKFLOW_RELATIVE_IMPORT_OUTSIDE,
              allowTypeImports: true,
              message: 'Workflow code imports values only from the workflow SDK, itself and src/jobs.',
            },
          ],
        },
      ],
    },
  },
  // Plain JavaScript, outside the TypeScript project (the bench's profiler is loaded before tsx).
  { files: ['eslint.config.js', '**/*.mjs'], extends: [tseslint.configs.disableTypeChecked] },
);
