import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

/** Every Node built-in, bare (`fs`, `fs/promises`) and prefixed (`node:fs`). */
const NODE_BUILT_INS = ['node:*', ...builtinModules, ...builtinModules.map((name) => `${name}/*`)];

/** Outside src/workflows, the modules workflow code may import values from; linted as workflow code. */
const WORKFLOW_VALUE_IMPORTS = [
  'src/jobs/job.ts',
  'src/jobs/transitions.ts',
  'src/jobs/failures.ts',
  'src/jobs/token-pricing.ts',
];

/** A relative import out of src/workflows to anything but those modules. */
const WORKFLOW_RELATIVE_IMPORT_OUTSIDE = `^\\.\\./(?!(${WORKFLOW_VALUE_IMPORTS.map((file) =>
  file.replace(/^src\//, '').replace(/\.ts$/, ''),
).join('|')})\\.js$)`;

/**
 * Who may not import whom, type imports included: the folder tree is the architecture, and these are the
 * edges it must not grow. Lower layers importing upward would let HTTP or Temporal concerns leak into
 * code that is meant to stand without them.
 */
const LAYERS = [
  {
    target: './src/use-cases',
    from: './src/api',
    message: 'Use-cases return domain outcomes that src/api maps; they know nothing of HTTP.',
  },
  {
    target: './src/config',
    from: './src',
    except: ['./config'],
    message: 'Config is the bottom layer: everything reads it, it reads nothing else of Kiln.',
  },
  {
    target: './src/jobs',
    from: './src',
    except: ['./jobs', './config'],
    message: 'The job vocabulary depends only on config; everything else is built on it.',
  },
  {
    target: './src/db',
    from: ['api', 'use-cases', 'workflows', 'activities', 'job-changes', 'worker'].map(
      (folder) => `./src/${folder}`,
    ),
    message: 'The data layer serves the layers above it and imports none of them.',
  },
];

export default tseslint.config(
  { ignores: ['node_modules', 'dist', 'src/client/dist', '.tools', '.data', 'test/fixtures'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    // Without these the import-x rules below pass whatever the imports are: sources import each other as
    // `./x.js` (ESM output names), which resolve only with the alias to `.ts`, and a `.ts` file they
    // resolve to is followed (for no-cycle) only when import-x knows to parse it.
    settings: {
      'import-x/resolver-next': [
        createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } }),
      ],
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
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
      'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: LAYERS }],
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
