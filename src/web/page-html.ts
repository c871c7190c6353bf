import { PAGE_STYLES } from './page-styles.js';

/** The page's markup; its behaviour is src/web/browser/app.ts, served as /app.js. */
export function pageHtml(temporalWorkflowsUrl: string | undefined): string {
  const temporal = temporalWorkflowsUrl ? ` data-temporal-ui="${escapeAttribute(temporalWorkflowsUrl)}"` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln playground</title>
<style>${PAGE_STYLES}</style>
</head>
<body${temporal}>
<header class="top"><h1>Kiln</h1><p id="balance" aria-live="polite"></p></header>
<p id="page-error" role="alert" hidden></p>
<form id="key-form" hidden>
  <label for="api-key">API key</label>
  <p id="key-reason"></p>
  <input id="api-key" name="api-key" autocomplete="off" required placeholder="kiln_…">
  <button type="submit">Use this key</button>
</form>
<main id="app" hidden>
  <form id="submit-form" aria-label="New job">
    <label for="prompt">Prompt</label>
    <textarea id="prompt" name="prompt" rows="3" required maxlength="4000" aria-describedby="prompt-error"></textarea>
    <p class="field-error" id="prompt-error" role="alert" hidden></p>
    <div class="fields">
      <div><label for="kind">Kind</label>
        <select id="kind" name="kind"><option value="image">image</option><option value="text">text</option></select></div>
      <div><label for="provider">Provider</label>
        <select id="provider" name="provider" aria-describedby="provider-error"></select>
        <p class="field-error" id="provider-error" role="alert" hidden></p></div>
      <div><label for="model">Model</label>
        <select id="model" name="model" aria-describedby="model-error"></select>
        <p class="field-error" id="model-error" role="alert" hidden></p></div>
      <div id="size-field"><label for="size">Size</label>
        <select id="size" name="size" aria-describedby="size-error"></select>
        <p class="field-error" id="size-error" role="alert" hidden></p></div>
      <div id="max-tokens-field" hidden><label for="max-tokens">Max tokens</label>
        <input id="max-tokens" name="max-tokens" type="number" min="1" max="16384" placeholder="1024"
               aria-describedby="max-tokens-error">
        <p class="field-error" id="max-tokens-error" role="alert" hidden></p></div>
    </div>
    <details id="deadlines">
      <summary>Deadlines</summary>
      <div class="fields">
        <div><label for="start-within">Start within (s)</label>
          <input id="start-within" name="start-within" type="number" min="1" aria-describedby="deadline-error"></div>
        <div><label for="finish-within">Finish within (s)</label>
          <input id="finish-within" name="finish-within" type="number" min="1" aria-describedby="deadline-error"></div>
      </div>
      <p class="field-error" id="deadline-error" role="alert" hidden></p>
    </details>
    <p id="price" aria-live="polite"></p>
    <p class="field-error" id="cost-error" role="alert" hidden></p>
    <button type="submit" id="submit">Generate</button>
    <p class="field-error" id="submit-error" role="alert" hidden></p>
  </form>
  <p id="reconnecting" role="status" hidden>Connection lost: reconnecting…</p>
  <section aria-labelledby="jobs-title">
    <div class="jobs-head">
      <h2 id="jobs-title">Your jobs</h2>
      <label>Show status <select id="filter-status">
        <option value="">all</option><option>queued</option><option>running</option><option>storing</option>
        <option>succeeded</option><option>failed</option><option>canceled</option><option>expired</option>
      </select></label>
      <label>Show kind <select id="filter-kind"><option value="">all</option><option>image</option><option>text</option></select></label>
    </div>
    <p id="empty" hidden>No jobs here yet. Write a prompt above and press Generate.</p>
    <ul id="jobs" aria-live="polite"></ul>
    <button type="button" id="more" class="secondary" hidden>Show older jobs</button>
  </section>
</main>
<dialog id="detail" aria-labelledby="detail-title">
  <div class="detail-head">
    <h2 id="detail-title">Job</h2>
    <button type="button" id="detail-close" class="secondary">Close</button>
  </div>
  <p id="detail-state" aria-live="polite"></p>
  <div id="detail-result"></div>
  <p><span id="detail-tokens"></span> <span id="detail-copied" role="status"></span></p>
  <div class="actions">
    <button type="button" id="detail-copy" class="secondary">Copy text</button>
    <a id="detail-download" class="button secondary" hidden>Download</a>
    <button type="button" id="detail-cancel" class="secondary">Cancel</button>
    <button type="button" id="detail-retry">Run again</button>
    <a id="detail-temporal" class="button secondary" target="_blank" rel="noopener">Open in Temporal UI</a>
  </div>
  <p class="field-error" id="detail-error" role="alert" hidden></p>
  <h3>Prompt</h3>
  <pre id="detail-prompt"></pre>
  <h3>Parameters</h3>
  <dl id="detail-params"></dl>
  <h3>Events</h3>
  <ol id="detail-timeline"></ol>
</dialog>
<script type="module" src="/app.js"></script>
</body>
</html>
`;
}

function escapeAttribute(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;');
}
