/** The page's markup and styles; its behaviour is src/web/browser/app.ts, served as /app.js. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #faf9f7; }
  body { max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
  h1 { margin: 0 0 1rem; font-size: 1.6rem; }
  form, section { background: #fff; border: 1px solid #ddd; border-radius: .5rem; padding: 1rem; margin-bottom: 1rem; }
  label { display: block; font-weight: 600; margin: .5rem 0 .25rem; }
  textarea, select, input { font: inherit; width: 100%; box-sizing: border-box; padding: .4rem; }
  .row { display: grid; grid-template-columns: repeat(3, 1fr); gap: .75rem; }
  button { font: inherit; padding: .5rem 1rem; margin-top: .75rem; border-radius: .4rem; border: 1px solid #b34700;
           background: #c2410c; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #b34700; }
  button:disabled { opacity: .5; cursor: default; }
  progress { width: 100%; height: 1rem; }
  #reconnecting { background: #fff3cd; border: 1px solid #e0b000; padding: .5rem; border-radius: .4rem; }
  #history { display: grid; grid-template-columns: repeat(auto-fill, minmax(9rem, 1fr)); gap: .75rem; list-style: none; padding: 0; }
  #history li { border: 1px solid #ddd; border-radius: .4rem; padding: .4rem; font-size: .85rem; background: #fff; }
  #history img, #current img { max-width: 100%; display: block; border-radius: .3rem; }
  #current-text { white-space: pre-wrap; background: #f4f1ec; padding: .75rem; border-radius: .4rem; font: inherit; }
  #history p { margin: 0 0 .3rem; max-height: 6.5em; overflow: hidden; }
  .status-failed, .status-canceled, .status-expired { color: #a00; }
  .status-succeeded { color: #070; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>Kiln</h1>
<form id="key-form" hidden>
  <label for="api-key">API key</label>
  <input id="api-key" name="api-key" autocomplete="off" required placeholder="kiln_…">
  <button type="submit">Use this key</button>
</form>
<div id="app" hidden>
  <form id="submit-form">
    <label for="prompt">Prompt</label>
    <textarea id="prompt" name="prompt" rows="3" required maxlength="4000"></textarea>
    <div class="row">
      <div><label for="kind">Kind</label>
        <select id="kind" name="kind"><option>image</option><option>text</option></select></div>
      <div><label for="provider">Provider</label>
        <select id="provider" name="provider">
          <option value="">default</option><option>local</option><option>openai</option><option>replicate</option>
        </select></div>
      <div><label for="size">Size</label>
        <select id="size" name="size">
          <option>256x256</option><option selected>512x512</option><option>1024x1024</option>
        </select></div>
    </div>
    <button type="submit" id="submit">Generate</button>
    <p id="submit-error" role="alert" hidden></p>
  </form>
  <p id="reconnecting" role="status" hidden>Connection lost: reconnecting…</p>
  <section id="current" aria-labelledby="current-title" hidden>
    <h2 id="current-title">Current job</h2>
    <p>Status: <strong id="current-status" aria-live="polite"></strong> <span id="current-detail"></span></p>
    <progress id="current-progress" max="100" value="0" aria-label="progress"></progress>
    <button type="button" id="cancel" class="secondary">Cancel</button>
    <img id="current-image" alt="the generated image" hidden>
    <pre id="current-text" aria-live="polite" aria-label="generated text" hidden></pre>
  </section>
  <section aria-labelledby="history-title">
    <h2 id="history-title">Your jobs</h2>
    <ul id="history"></ul>
  </section>
</div>
<script type="module" src="/app.js"></script>
</body>
</html>
`;
