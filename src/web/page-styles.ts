/** The page's styles: one column on a phone, the grid as wide as the screen allows. */
export const PAGE_STYLES = `
  :root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #faf9f7; }
  * { box-sizing: border-box; }
  body { max-width: 72rem; margin: 0 auto; padding: 1rem; }
  .top { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: .5rem; }
  h1 { margin: 0 0 .75rem; font-size: 1.6rem; }
  h2 { font-size: 1.2rem; margin: 0; }
  h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
  #balance { margin: 0; color: #555; }
  form, section { background: #fff; border: 1px solid #ddd; border-radius: .5rem; padding: 1rem; margin-bottom: 1rem; }
  label { display: block; font-weight: 600; margin: .5rem 0 .25rem; }
  textarea, select, input { font: inherit; width: 100%; padding: .4rem; }
  .fields { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; }
  button, .button { font: inherit; padding: .45rem .9rem; border-radius: .4rem; border: 1px solid #b34700;
                    background: #c2410c; color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
  #submit { margin-top: .5rem; }
  button.secondary, .button.secondary { background: #fff; color: #b34700; }
  button:disabled { opacity: .5; cursor: default; }
  :focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
  .field-error, #page-error { color: #a00; margin: .3rem 0; }
  #price { margin: .5rem 0 0; }
  progress { width: 100%; height: .8rem; }
  #reconnecting { background: #fff3cd; border: 1px solid #e0b000; padding: .5rem; border-radius: .4rem; }
  .jobs-head { display: flex; flex-wrap: wrap; align-items: end; gap: .75rem; margin-bottom: .75rem; }
  .jobs-head h2 { flex: 1 1 100%; }
  .jobs-head label { margin: 0; font-weight: 400; }
  .jobs-head select { width: auto; }
  #jobs { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .75rem;
          list-style: none; padding: 0; margin: 0; }
  .card { border: 1px solid #ddd; border-radius: .5rem; padding: .6rem; background: #fff; font-size: .85rem;
          display: flex; flex-direction: column; gap: .3rem; cursor: pointer; min-width: 0; }
  .card p { margin: 0; overflow-wrap: anywhere; }
  .card img { width: 100%; display: block; border-radius: .3rem; }
  .card .text-result { white-space: pre-wrap; max-height: 7.5em; overflow: hidden; background: #f4f1ec;
                       padding: .4rem; border-radius: .3rem; }
  .card .text-result:empty { display: none; }
  .card-open { background: none; border: none; color: inherit; padding: 0; text-align: left; font-weight: 600;
               display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
  .unknown-prompt { font-style: italic; font-weight: 400; color: #666; }
  .meta, .timings, .cost { color: #555; }
  .state { display: flex; align-items: center; gap: .5rem; }
  .status { font-weight: 600; white-space: nowrap; }
  .status-failed, .status-canceled, .status-expired, .ending { color: #a00; }
  .status-succeeded { color: #070; }
  .waiting { color: #7a5200; }
  .cancel { align-self: flex-start; padding: .2rem .6rem; }
  #more { margin-top: .75rem; }
  dialog { width: min(48rem, 100%); max-height: 92vh; border: 1px solid #ccc; border-radius: .5rem; padding: 1rem; }
  dialog::backdrop { background: rgba(0, 0, 0, .4); }
  .detail-head { display: flex; justify-content: space-between; align-items: center; gap: .5rem; }
  .detail-head h2 { overflow-wrap: anywhere; }
  .actions { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
  img.full { max-width: 100%; display: block; }
  #detail-result pre, #detail-prompt { white-space: pre-wrap; background: #f4f1ec; padding: .75rem; border-radius: .4rem;
                                       font: inherit; overflow-wrap: anywhere; }
  #detail-params { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .75rem; }
  #detail-params dt { font-weight: 600; }
  #detail-params dd { margin: 0; overflow-wrap: anywhere; }
  #detail-timeline { list-style: none; padding-left: 0; }
  #detail-timeline .seq { color: #666; }
  #detail-timeline time { color: #666; }
  [hidden] { display: none !important; }
`;
