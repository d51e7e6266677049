/* The site owner's dashboard (GET /admin). Plain JavaScript, no build step.
 *
 * Everything shown comes from the admin endpoints. The admin token lives in sessionStorage (this tab only,
 * gone when it closes) and travels only in the Authorization header, never in a URL. Data from the service is
 * always written with textContent: a visitor's question is text, whatever it contains.
 */
(() => {
  'use strict';

  const TOKEN_KEY = 'kb-admin-token';
  const KNOWN_TIERS = ['gemini', 'openai', 'local', 'extractive', 'curated', 'none'];
  const TIER_COLORS = {
    gemini: '#1a73e8', openai: '#0b8043', local: '#8e24aa', extractive: '#c26401', curated: '#00838f',
    none: '#5f6368',
  };
  const SPARE_COLORS = ['#d81b60', '#3949ab', '#6d4c41', '#7cb342', '#f4511e'];
  const REASONS = {
    no_match: 'nothing found', extractive: 'extract only', withheld: 'withheld', rated_down: 'rated down',
  };
  const CHART_HEIGHT = 220;
  const TRANSCRIPTS_PER_PAGE = 20;
  const LEADS_PER_PAGE = 50;
  // A running job is asked after every 3 s: 20 of the 60 calls a minute the admin budget allows, shared with
  // the owner's other tabs and scripts.
  const JOB_POLL_MS = 3000;
  const JOB_KINDS = { crawl: 'crawl of the website', ingest: 'reindex of the knowledge' };
  const INGEST_OUTCOMES = { up_to_date: 'Nothing changed', updated: 'Updated', rebuilt: 'Rebuilt' };

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    overview: null,
    charts: {},
    resizers: [],
    transcripts: { page: 1, total: 0, filters: null },
    leads: { offset: 0, total: 0 },
    writing: null,
    // The job followed: its poll timer, and a generation that a sign-out moves on so a late answer is dropped.
    job: { running: false, timer: null, generation: 0, shown: '' },
  };

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data; // the body as sent: a 409 carries the job that is running
    }
  }

  // -- calls ------------------------------------------------------------------------------------------------

  async function api(path, { method = 'GET', body, probe = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store', credentials: 'omit', redirect: 'error',
      });
    } catch (_unreachable) {
      throw new ApiError(0, 'The service cannot be reached. Check the connection and try again.');
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (_notJson) {
        data = null;
      }
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' ? data.error : `The request failed (${response.status}).`;
      const error = new ApiError(response.status, message, data);
      // A token refused in mid-session (changed on the server): back to signing in, saying why.
      if (!probe && (response.status === 401 || response.status === 403)) signedOut(refusal(error));
      throw error;
    }
    return data;
  }

  function refusal(error) {
    if (error.status === 403 && state.token) {
      return `Wrong admin token (${error.status}): ${error.message} Check ADMIN_TOKEN and try again.`;
    }
    if (error.status === 401) return state.token ? `${error.message} (${error.status})` : '';
    return `${error.message} (${error.status})`;
  }

  // -- signing in and out -----------------------------------------------------------------------------------

  async function start() {
    wire();
    try {
      const data = await api(overviewPath(), { probe: true });
      enter(data);
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 429) {
        const message = refusal(error);
        forgetToken();
        showSignIn(message);
      } else if (error.status === 404) {
        enter(null, error.message); // signed in, but answers are not recorded: the page says so
      } else {
        $('loading').textContent = error.message;
      }
    }
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    const message = $('signin-error');
    if (!token) {
      message.textContent = 'Enter the admin token.';
      input.focus();
      return;
    }
    message.textContent = '';
    state.token = token;
    try {
      const data = await api(overviewPath(), { probe: true });
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      enter(data);
      $('title').focus(); // the form is gone: the owner continues at the top of the dashboard
    } catch (error) {
      if (error.status === 404) {
        sessionStorage.setItem(TOKEN_KEY, token);
        input.value = '';
        enter(null, error.message);
        $('title').focus();
        return;
      }
      message.textContent = refusal(error) || error.message; // before forgetting: it words a wrong token
      state.token = null;
      input.focus();
      input.select();
    }
  }

  function signOut() {
    signedOut('');
    $('token').focus();
  }

  function signedOut(message) {
    forgetToken();
    clearDashboard();
    showSignIn(message);
  }

  function forgetToken() {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  function showSignIn(message) {
    $('loading').hidden = true;
    $('dashboard').hidden = true;
    $('nav').hidden = true;
    $('sign-out').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    if (message) $('token').focus();
  }

  function enter(overviewData, overviewProblem) {
    $('loading').hidden = true;
    $('signin').hidden = true;
    $('dashboard').hidden = false;
    $('nav').hidden = false;
    $('sign-out').hidden = !state.token; // without ADMIN_TOKEN (this machine only) there is nothing to forget
    if (overviewData) renderOverview(overviewData);
    else overviewUnavailable(overviewProblem);
    loadGaps();
    loadAnswers();
    loadTranscripts(1);
    loadLeads(0);
    loadKnowledge();
  }

  function clearDashboard() {
    stopFollowing();
    clearKnowledge();
    for (const chart of Object.values(state.charts)) chart.destroy();
    for (const key of Object.keys(state.charts)) delete state.charts[key];
    for (const observer of state.resizers) observer.disconnect();
    state.resizers = [];
    state.overview = null;
    for (const id of ['headline', 'top-sources', 'answers-list', 'leads-list', 'conversation-turns']) {
      $(id).replaceChildren();
    }
    for (const id of ['chart-tiers', 'chart-misses', 'chart-ratings', 'chart-cache', 'chart-latency']) {
      $(id).replaceChildren();
    }
    for (const table of ['daily-table', 'gaps-table', 'transcripts-table']) {
      $(table).tBodies[0].replaceChildren();
    }
    $('daily-table').tHead.replaceChildren();
    $('conversation').hidden = true;
    for (const id of ['overview-status', 'gaps-status', 'answers-status', 'transcripts-status', 'leads-status',
      'tr-page', 'leads-page']) {
      $(id).textContent = '';
    }
  }

  // -- overview ---------------------------------------------------------------------------------------------

  function overviewPath() {
    return '/admin/overview?days=' + encodeURIComponent($('period').value);
  }

  async function loadOverview() {
    $('overview-status').textContent = 'Loading…';
    try {
      renderOverview(await api(overviewPath()));
    } catch (error) {
      overviewUnavailable(error.message);
    }
  }

  function overviewUnavailable(message) {
    $('overview-status').textContent = message;
    $('overview-body').hidden = true;
  }

  function renderOverview(data) {
    state.overview = data;
    $('overview-body').hidden = false;
    const totals = data.totals;
    $('overview-status').textContent =
      totals.answers === 0 ? 'No answers in this period yet.' : '';
    headline([
      ['Answers', count(totals.answers)],
      ['Nothing found', `${percent(totals.no_answer_rate)} (${count(totals.no_answer)})`],
      ['Withheld', `${percent(totals.withheld_rate)} (${count(totals.withheld)})`],
      ['Errors', count(totals.errors)],
      ['Cache hit rate', percent(totals.cache_hit_rate)],
      ['Thumbs up / down', `${count(totals.thumbs_up)} / ${count(totals.thumbs_down)}`],
      ['p50 time to answer', millis(totals.p50_ms)],
      ['p95 time to answer', millis(totals.p95_ms)],
    ]);
    drawCharts(data);
    dailyTable(data);
    const sources = $('top-sources');
    sources.replaceChildren();
    for (const item of data.top_sources) {
      const li = element('li');
      li.append(element('span', 'source-name', item.source), ' ',
        element('span', 'muted', `${count(item.answers)} ${item.answers === 1 ? 'answer' : 'answers'}`));
      sources.append(li);
    }
    if (!data.top_sources.length) sources.append(element('li', 'muted', 'No sources cited in this period.'));
    tierOptions(data.tiers);
  }

  function headline(items) {
    const list = $('headline');
    list.replaceChildren();
    for (const [label, value] of items) {
      const group = element('div', 'stat');
      group.append(element('dt', null, label), element('dd', null, value));
      list.append(group);
    }
  }

  function dailyTable(data) {
    const table = $('daily-table');
    const columns = ['Day', 'Answers', ...data.tiers, 'Nothing found', 'Withheld', 'Errors', 'Thumbs up',
      'Thumbs down', 'Cached', 'p50 ms', 'p95 ms'];
    const head = element('tr');
    for (const name of columns) {
      const th = element('th', null, name);
      th.scope = 'col';
      head.append(th);
    }
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const day of data.per_day) {
      const row = element('tr');
      const th = element('th', null, day.day);
      th.scope = 'row';
      row.append(th);
      const values = [day.answers, ...data.tiers.map((tier) => day.tiers[tier] || 0), day.no_answer, day.withheld,
        day.errors, day.thumbs_up, day.thumbs_down, day.cached];
      for (const value of values) row.append(element('td', 'num', count(value)));
      row.append(element('td', 'num', day.p50_ms == null ? '–' : count(Math.round(day.p50_ms))));
      row.append(element('td', 'num', day.p95_ms == null ? '–' : count(Math.round(day.p95_ms))));
      body.append(row);
    }
  }

  function drawCharts(data) {
    const days = data.per_day.map((day) => Date.parse(day.day + 'T00:00:00Z') / 1000);
    const pct = (rate) => (rate == null ? null : Math.round(rate * 10000) / 100);
    const of = (pick) => data.per_day.map(pick);
    chart('chart-tiers', days, data.tiers.map((tier, i) => ({
      label: tier, color: tierColor(tier, i), values: of((day) => day.tiers[tier] || 0),
    })), { counts: true });
    chart('chart-misses', days, [
      { label: 'Nothing found %', color: '#c5221f', values: of((day) => pct(day.no_answer_rate)) },
      { label: 'Withheld %', color: '#c26401', values: of((day) => pct(day.withheld_rate)) },
    ], { percent: true });
    chart('chart-ratings', days, [
      { label: 'Thumbs up', color: '#0b8043', values: of((day) => day.thumbs_up) },
      { label: 'Thumbs down', color: '#c5221f', values: of((day) => day.thumbs_down) },
    ], { counts: true });
    chart('chart-cache', days, [
      { label: 'Cache hits %', color: '#1a73e8', values: of((day) => pct(day.cache_hit_rate)) },
    ], { percent: true });
    chart('chart-latency', days, [
      { label: 'p50 ms', color: '#1a73e8', values: of((day) => day.p50_ms) },
      { label: 'p95 ms', color: '#8e24aa', values: of((day) => day.p95_ms) },
    ], { counts: true });
  }

  function tierColor(tier, index) {
    return TIER_COLORS[tier] || SPARE_COLORS[index % SPARE_COLORS.length];
  }

  function chart(id, xs, series, { percent: isPercent = false } = {}) {
    const box = $(id);
    if (state.charts[id]) state.charts[id].destroy();
    box.replaceChildren();
    if (typeof uPlot === 'undefined') {
      box.append(element('p', 'error', 'The chart library did not load.'));
      return;
    }
    const axis = { stroke: '#3c4043', grid: { stroke: '#e8eaed', width: 1 }, ticks: { stroke: '#dadce0' } };
    const options = {
      width: chartWidth(box),
      height: CHART_HEIGHT,
      // The service's days are UTC days: so are the axis's.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, isPercent ? 100 : Math.max(1, Math.ceil((max || 0) * 1.1))] },
      },
      axes: [
        { ...axis, values: '{MMM} {D}' },
        { ...axis, size: 56, values: (_u, ticks) => ticks.map((v) => (isPercent ? v + '%' : count(v))) },
      ],
      series: [
        { label: 'Day', value: (_u, v) => (v == null ? '–' : new Date(v * 1000).toISOString().slice(0, 10)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          points: { show: true, size: 6, fill: s.color },
          // A rate has no value on a day without answers: the line carries on to the next day that has one.
          spanGaps: true,
          value: (_u, v) => (v == null ? '–' : isPercent ? v + '%' : count(Math.round(v))),
        })),
      ],
    };
    const plot = new uPlot(options, [xs, ...series.map((s) => s.values)], box);
    state.charts[id] = plot;
    // Charts follow their box: a phone turned sideways, a window resized.
    const observer = new ResizeObserver(() => {
      const width = chartWidth(box);
      if (Math.abs(width - plot.width) > 1) plot.setSize({ width, height: CHART_HEIGHT });
    });
    observer.observe(box);
    state.resizers.push(observer);
  }

  function chartWidth(box) {
    return Math.max(200, Math.floor(box.clientWidth || box.parentElement.clientWidth || 300));
  }

  function tierOptions(tiers) {
    const select = $('tr-tier');
    const chosen = select.value;
    const names = [...new Set([...KNOWN_TIERS, ...(tiers || [])])];
    const options = [new Option('Any', '')];
    for (const name of names) options.push(new Option(name, name));
    select.replaceChildren(...options);
    select.value = names.includes(chosen) ? chosen : '';
  }

  // -- knowledge gaps ---------------------------------------------------------------------------------------

  async function loadGaps() {
    const status = $('gaps-status');
    const body = $('gaps-table').tBodies[0];
    status.textContent = 'Loading…';
    try {
      const data = await api('/admin/gaps?days=' + encodeURIComponent($('gaps-days').value));
      body.replaceChildren();
      data.gaps.forEach((gap, index) => body.append(gapRow(gap, index)));
      status.textContent = data.gaps.length
        ? `${count(data.gaps.length)} ${data.gaps.length === 1 ? 'gap' : 'gaps'} from ${count(data.questions)} questions.`
        : 'No knowledge gaps in this period.';
    } catch (error) {
      body.replaceChildren();
      status.textContent = error.message;
    }
  }

  function gapRow(gap, index) {
    const row = element('tr');
    const question = element('td', 'question');
    question.id = 'gap-q-' + index;
    question.append(element('span', 'strong', gap.examples[0]));
    if (gap.examples.length > 1) {
      question.append(element('span', 'muted block', 'Also asked as: ' + gap.examples.slice(1).join(' · ')));
    }
    row.append(question);
    row.append(element('td', 'num', count(gap.count)));
    row.append(element('td', 'nowrap', when(gap.last_asked)));
    const reasons = Object.entries(gap.reasons)
      .map(([reason, n]) => `${REASONS[reason] || reason} ×${n}`)
      .join(', ');
    row.append(element('td', null, reasons));
    const nearest = element('td');
    if (gap.nearest) {
      nearest.append(element('span', 'block', gap.nearest.title || gap.nearest.source));
      nearest.append(element('span', 'muted block', `${gap.nearest.source} · similarity ${gap.nearest.score.toFixed(2)}`));
    } else {
      nearest.append(element('span', 'muted', 'none'));
    }
    row.append(nearest);
    const action = element('td');
    const button = element('button', null, 'Write an answer');
    button.type = 'button';
    button.setAttribute('aria-describedby', question.id);
    button.addEventListener('click', () => openWriter(gap, action));
    action.append(button);
    row.append(action);
    return row;
  }

  function openWriter(gap, cell) {
    state.writing = cell;
    $('write-questions').value = gap.examples.join('\n');
    $('write-answer').value = '';
    $('write-sources').value = '';
    $('write-error').textContent = '';
    $('write-dialog').showModal();
    $('write-answer').focus();
  }

  async function saveWritten(event) {
    event.preventDefault();
    const lines = (id) => $(id).value.split('\n').map((line) => line.trim()).filter(Boolean);
    const questions = lines('write-questions');
    const answer = $('write-answer').value.trim();
    const error = $('write-error');
    if (!questions.length || !answer) {
      error.textContent = !questions.length ? 'Give at least one example question.' : 'Write the answer.';
      $(!questions.length ? 'write-questions' : 'write-answer').focus();
      return;
    }
    try {
      await api('/admin/answers', { method: 'POST', body: { questions, answer, sources: lines('write-sources') } });
    } catch (failure) {
      if (!$('write-dialog').open) return; // signed out meanwhile
      error.textContent = failure.message;
      return;
    }
    const cell = state.writing;
    state.writing = null;
    $('write-dialog').close();
    if (cell && cell.isConnected) {
      const done = element('span', 'done', 'Answer written ✓');
      done.tabIndex = -1;
      cell.replaceChildren(done);
      done.focus();
    }
    loadAnswers();
  }

  // -- curated answers --------------------------------------------------------------------------------------

  async function loadAnswers() {
    const list = $('answers-list');
    const status = $('answers-status');
    status.textContent = 'Loading…';
    try {
      const data = await api('/admin/answers');
      list.replaceChildren(...data.answers.map(answerCard));
      status.textContent = data.answers.length
        ? `${count(data.answers.length)} curated ${data.answers.length === 1 ? 'answer' : 'answers'}.`
        : 'No curated answers yet: write one from a knowledge gap.';
    } catch (error) {
      list.replaceChildren();
      status.textContent = error.message;
    }
  }

  function answerCard(entry) {
    const card = element('li', 'card');
    card.append(element('h3', null, entry.questions[0]));
    if (entry.questions.length > 1) {
      card.append(element('p', 'muted', 'Also: ' + entry.questions.slice(1).join(' · ')));
    }
    card.append(element('p', 'text', entry.answer));
    if (entry.sources.length) card.append(element('p', 'muted', 'Sources: ' + entry.sources.join(', ')));
    card.append(element('p', 'muted small', 'Changed ' + when(entry.updated_at)));
    const remove = element('button', 'danger', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', 'Delete the answer to: ' + entry.questions[0]);
    let armed = false;
    remove.addEventListener('click', async () => {
      if (!armed) { // a second click confirms: a deleted answer cannot be brought back
        armed = true;
        remove.textContent = 'Confirm delete';
        remove.setAttribute('aria-label', 'Confirm: delete the answer to: ' + entry.questions[0]);
        return;
      }
      remove.disabled = true;
      try {
        await api('/admin/answers/' + encodeURIComponent(entry.id), { method: 'DELETE' });
      } catch (error) {
        $('answers-status').textContent = error.message;
        remove.disabled = false;
        return;
      }
      await loadAnswers();
      $('answers-status').textContent = 'Answer deleted. ' + $('answers-status').textContent;
      $('answers-title').focus();
    });
    card.append(remove);
    return card;
  }

  // -- transcripts ------------------------------------------------------------------------------------------

  function transcriptFilters() {
    return {
      days: $('tr-days').value,
      rating: $('tr-rating').value,
      tier: $('tr-tier').value,
      no_answer: $('tr-no-answer').checked,
    };
  }

  async function loadTranscripts(page) {
    const filters = state.transcripts.filters || transcriptFilters();
    state.transcripts.filters = filters;
    const query = new URLSearchParams({ days: filters.days, page: String(page), per_page: String(TRANSCRIPTS_PER_PAGE) });
    if (filters.rating) query.set('rating', filters.rating);
    if (filters.tier) query.set('tier', filters.tier);
    if (filters.no_answer) query.set('no_answer', 'true');
    const status = $('transcripts-status');
    const body = $('transcripts-table').tBodies[0];
    status.textContent = 'Loading…';
    try {
      const data = await api('/admin/conversations?' + query);
      state.transcripts.page = data.page;
      state.transcripts.total = data.total;
      body.replaceChildren(...data.conversations.map(transcriptRow));
      status.textContent = data.total
        ? `${count(data.total)} ${data.total === 1 ? 'conversation' : 'conversations'}.`
        : 'No conversations match.';
    } catch (error) {
      body.replaceChildren();
      state.transcripts.total = 0;
      status.textContent = error.message;
    }
    pager('tr', state.transcripts.page, state.transcripts.total, TRANSCRIPTS_PER_PAGE);
  }

  function transcriptRow(summary) {
    const row = element('tr');
    row.append(element('td', 'nowrap', when(summary.last_at)));
    const first = element('td', 'question');
    const open = element('button', 'link', summary.first_question || '(transcript not kept)');
    open.type = 'button';
    open.addEventListener('click', () => openConversation(summary.id));
    first.append(open);
    row.append(first);
    row.append(element('td', 'num', count(summary.turns)));
    row.append(element('td', null, summary.providers.join(', ')));
    row.append(element('td', null, summary.outcomes.map((o) => o.replace('_', ' ')).join(', ')));
    const ratings = Object.entries(summary.ratings).map(([rating, n]) => `${rating} ×${n}`).join(', ');
    row.append(element('td', null, ratings || '–'));
    return row;
  }

  async function openConversation(id) {
    const section = $('conversation');
    const list = $('conversation-turns');
    section.hidden = false;
    list.replaceChildren(element('li', 'muted', 'Loading…'));
    try {
      const data = await api('/admin/conversations/' + encodeURIComponent(id));
      list.replaceChildren(...data.turns.map(turnItem));
    } catch (error) {
      list.replaceChildren(element('li', 'error', error.message));
    }
    $('conversation-title').focus();
  }

  function turnItem(turn) {
    const item = element('li', 'turn');
    item.append(element('p', 'muted small', `${when(turn.at)} · ${turn.surface}`));
    item.append(element('p', 'asked', turn.question == null ? '(question not kept)' : turn.question));
    item.append(element('p', 'text', turn.answer == null ? '(answer not kept)' : turn.answer));
    const facts = [
      `${turn.provider}${turn.model ? ' / ' + turn.model : ''}`,
      turn.outcome.replace('_', ' '),
      turn.cached ? 'cached' : null,
      turn.degraded ? 'degraded' : null,
      millis(turn.total_ms),
    ].filter(Boolean);
    item.append(element('p', 'muted small', facts.join(' · ')));
    if (turn.sources && turn.sources.length) {
      item.append(element('p', 'muted small', 'Sources: ' + turn.sources.map((s) => s.title || s.source).join(', ')));
    }
    if (turn.feedback) {
      const rating = turn.feedback.rating === 'up' ? 'Rated up' : 'Rated down';
      item.append(element('p', 'rating', turn.feedback.comment ? `${rating}: “${turn.feedback.comment}”` : rating));
    }
    return item;
  }

  // -- leads ------------------------------------------------------------------------------------------------

  async function loadLeads(offset) {
    const list = $('leads-list');
    const status = $('leads-status');
    status.textContent = 'Loading…';
    try {
      const page = Math.floor(offset / LEADS_PER_PAGE) + 1;
      const data = await api(`/admin/leads?days=30&page=${page}&per_page=${LEADS_PER_PAGE}`);
      state.leads.offset = offset;
      state.leads.total = data.total;
      list.replaceChildren(...data.leads.map(leadCard));
      status.textContent = data.total
        ? `${count(data.total)} ${data.total === 1 ? 'lead' : 'leads'}.`
        : 'No leads in the last 30 days.';
    } catch (error) {
      list.replaceChildren();
      state.leads.total = 0;
      // 404: an older service without leads, or answers not recorded at all.
      status.textContent = error.status === 404 ? 'Leads are not available on this service.' : error.message;
    }
    pager('leads', Math.floor(state.leads.offset / LEADS_PER_PAGE) + 1, state.leads.total, LEADS_PER_PAGE);
  }

  function leadCard(lead) {
    const card = element('li', 'card');
    card.append(element('h3', null, lead.name || '(no name)'));
    const contact = element('p');
    contact.append(element('span', 'label', 'E-mail: '), element('span', 'source-name', lead.email));
    card.append(contact);
    card.append(element('p', 'muted small', 'Sent ' + when(lead.created_at)));
    card.append(element('p', 'text', lead.message));
    if (lead.conversation) {
      const open = element('button', 'quiet', 'Open the conversation');
      open.type = 'button';
      open.setAttribute('aria-label', 'Open the conversation of ' + (lead.name || 'this lead'));
      open.addEventListener('click', () => {
        $('transcripts').scrollIntoView();
        openConversation(lead.conversation);
      });
      card.append(open);
    }
    const deliveries = element('ul', 'deliveries');
    deliveries.setAttribute('aria-label', 'Deliveries');
    for (const delivery of lead.deliveries || []) deliveries.append(deliveryItem(delivery));
    if (!(lead.deliveries || []).length) deliveries.append(element('li', 'muted', 'Kept here only: no webhook or e-mail is configured.'));
    card.append(deliveries);
    return card;
  }

  function deliveryItem(delivery) {
    const item = element('li');
    const channel = delivery.channel === 'email' ? 'E-mail' : delivery.channel === 'webhook' ? 'Webhook' : delivery.channel;
    item.append(element('span', 'status status-' + safeClass(delivery.status), delivery.status), ' ');
    item.append(`${channel} to `, element('span', 'source-name', delivery.target));
    const facts = [`${delivery.attempts} ${delivery.attempts === 1 ? 'attempt' : 'attempts'}`];
    if (delivery.delivered_at) facts.push('delivered ' + when(delivery.delivered_at));
    if (delivery.status === 'pending' && delivery.next_attempt_at) facts.push('next try ' + when(delivery.next_attempt_at));
    item.append(element('span', 'muted block small', facts.join(' · ')));
    if (delivery.last_error) item.append(element('span', 'error block small', 'Last error: ' + delivery.last_error));
    return item;
  }

  function safeClass(value) {
    return ['pending', 'delivered', 'failed'].includes(value) ? value : 'other';
  }

  // -- knowledge --------------------------------------------------------------------------------------------

  async function loadKnowledge() {
    const status = $('knowledge-status');
    const generation = state.job.generation;
    status.textContent = 'Loading…';
    let data;
    try {
      data = await api('/admin/knowledge');
    } catch (error) {
      if (generation !== state.job.generation) return;
      $('knowledge-summary').hidden = true;
      $('knowledge-files').hidden = true;
      status.textContent = error.message;
      return;
    }
    if (generation !== state.job.generation) return; // signed out meanwhile
    status.textContent = '';
    renderKnowledge(data);
    if (data.reindex && !state.job.running) {
      renderJob(data.reindex);
      if (data.reindex.status === 'running') follow(); // started elsewhere: by the schedule or another tab
    }
  }

  function renderKnowledge(data) {
    $('knowledge-summary').hidden = false;
    $('knowledge-files').hidden = false;
    const list = $('knowledge-headline');
    list.replaceChildren();
    const upToDate = data.up_to_date === true ? 'Yes' : data.up_to_date === false ? 'No' : 'Unknown';
    for (const [label, value] of [
      ['Version', data.version || 'none'],
      ['Documents', count(data.documents)],
      ['Chunks', count(data.chunks)],
      ['Up to date', upToDate],
    ]) {
      const group = element('div', 'stat');
      group.append(element('dt', null, label), element('dd', null, value));
      list.append(group);
    }
    renderPending(data);
    $('knowledge-folder-error').textContent = data.folder_error
      ? 'The knowledge folder cannot be read: ' + data.folder_error
      : '';
    renderSite(data.site);
    const body = $('knowledge-table').tBodies[0];
    body.replaceChildren(...data.files.map(knowledgeRow));
    if (!data.files.length) {
      const row = element('tr');
      const cell = element('td', 'muted', 'Nothing is served yet: reindex to read the knowledge folder.');
      cell.colSpan = 4;
      row.append(cell);
      body.append(row);
    }
  }

  function renderPending(data) {
    const line = $('knowledge-state');
    const details = $('pending-details');
    const names = $('pending-list');
    names.replaceChildren();
    const pending = data.pending;
    if (data.up_to_date) {
      line.textContent = 'Up to date: what is served matches the knowledge folder' +
        (data.site ? ' and the website snapshot.' : '.');
      line.className = 'done-text';
      details.hidden = true;
      return;
    }
    line.className = '';
    if (!pending) {
      line.textContent = 'Whether the knowledge is up to date is not known.';
      details.hidden = true;
      return;
    }
    const parts = [
      `${count(pending.added.length)} added`,
      `${count(pending.changed.length)} changed`,
      `${count(pending.removed.length)} removed`,
    ];
    line.textContent = 'Not up to date. The next reindex brings in: ' + parts.join(', ') + '.' +
      (pending.settings_changed ? ' The embedding model or chunking changed: it rebuilds everything.' : '');
    for (const [label, items] of [['Added', pending.added], ['Changed', pending.changed], ['Removed', pending.removed]]) {
      for (const name of items) {
        const item = element('li');
        item.append(element('span', 'label', label + ': '), element('span', 'source-name', name));
        names.append(item);
      }
    }
    details.hidden = !names.childElementCount;
  }

  function renderSite(site) {
    $('site').hidden = !site;
    $('crawl-now').hidden = !site;
    if (!site) return;
    const urls = $('site-urls');
    urls.replaceChildren(...site.urls.map((url) => {
      const item = element('li');
      item.append(addressNode(url));
      return item;
    }));
    $('site-interval').textContent = interval(site.interval_seconds);
    $('site-last').textContent = site.last_crawl_at ? when(site.last_crawl_at) : 'Never';
    $('site-next').textContent = site.next_crawl_at
      ? when(site.next_crawl_at)
      : 'Not scheduled: only when you ask';
  }

  function knowledgeRow(file) {
    const row = element('tr');
    const name = element('td', 'name');
    name.append(addressNode(file.path));
    row.append(name);
    row.append(element('td', 'num', count(file.chunks)));
    row.append(element('td', 'nowrap', file.ingested_at ? when(file.ingested_at) : '–'));
    row.append(element('td', file.skipped ? 'warn-text' : 'muted', file.skipped || '–'));
    return row;
  }

  // A crawled page's address is a link that opens apart from the dashboard; anything else (a file's path, an
  // address of another scheme) stays text: the addresses come from the website, not from the owner.
  function addressNode(text) {
    const href = webAddress(text);
    if (!href) return element('span', 'source-name', text);
    const link = element('a', 'source-name', text);
    link.href = href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.append(element('span', 'visually-hidden', ' (opens in a new tab)'));
    return link;
  }

  function webAddress(text) {
    if (!/^https?:\/\//i.test(text)) return null;
    try {
      const url = new URL(text);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (_invalid) {
      return null;
    }
  }

  function interval(seconds) {
    if (!seconds) return 'Only when you ask (CRAWL_INTERVAL is off)';
    for (const [unit, size] of [['day', 86400], ['hour', 3600], ['minute', 60]]) {
      if (seconds >= size && seconds % size === 0) {
        const n = seconds / size;
        return n === 1 ? `Every ${unit}` : `Every ${count(n)} ${unit}s`;
      }
    }
    return `Every ${count(Math.round(seconds))} seconds`;
  }

  function clearKnowledge() {
    $('knowledge-summary').hidden = true;
    $('knowledge-files').hidden = true;
    $('knowledge-table').tBodies[0].replaceChildren();
    for (const id of ['knowledge-headline', 'pending-list', 'site-urls', 'job-result']) $(id).replaceChildren();
    for (const id of ['knowledge-status', 'knowledge-state', 'knowledge-folder-error', 'job-summary', 'job-status']) {
      $(id).textContent = '';
    }
    $('job-status').classList.remove('error');
    state.job.shown = '';
    $('job-title').hidden = true;
    $('job-summary').hidden = true;
    $('job-progress').hidden = true;
    $('crawl-now').hidden = true;
    jobButtons(false);
  }

  // -- knowledge: a reindex or crawl, started here or elsewhere, followed until it ends ---------------------

  async function startJob(kind) {
    if (state.job.running) {
      state.job.shown = '';
      $('job-status').textContent = 'A job is running already: it is shown here until it ends.';
      return;
    }
    const generation = state.job.generation;
    jobButtons(true);
    let job;
    let note = '';
    try {
      job = await api(kind === 'crawl' ? '/admin/crawl' : '/admin/reindex', { method: 'POST' });
    } catch (error) {
      if (generation !== state.job.generation) return;
      if (error.status === 409 && error.data && error.data.job) {
        job = error.data.job; // one already runs (the schedule, another tab): follow that one instead
        note = error.message + ' ';
      } else {
        jobButtons(false);
        state.job.shown = '';
        $('job-status').textContent = error.message;
        $('job-status').classList.add('error');
        return;
      }
    }
    if (generation !== state.job.generation) return;
    renderJob(job, note);
    if (job.status === 'running') follow();
    else ended();
  }

  function follow() {
    state.job.running = true;
    jobButtons(true);
    clearTimeout(state.job.timer);
    const generation = state.job.generation;
    state.job.timer = setTimeout(() => poll(generation), JOB_POLL_MS);
  }

  async function poll(generation) {
    let job;
    try {
      job = await api('/admin/reindex');
    } catch (error) {
      if (generation !== state.job.generation) return;
      if (error.status === 401 || error.status === 403) return; // signed out: nothing left to follow
      if (error.status === 404) { // the service restarted: the job is gone with it
        ended();
        return;
      }
      // A passing failure (the network, the rate limit): said, and asked again at the next tick.
      state.job.shown = '';
      $('job-status').textContent = error.message;
      state.job.timer = setTimeout(() => poll(generation), JOB_POLL_MS);
      return;
    }
    if (generation !== state.job.generation) return;
    renderJob(job);
    if (job.status === 'running') state.job.timer = setTimeout(() => poll(generation), JOB_POLL_MS);
    else ended();
  }

  function ended() {
    state.job.running = false;
    clearTimeout(state.job.timer);
    state.job.timer = null;
    jobButtons(false);
    loadKnowledge(); // what the job changed: the table, the version, the pending changes
  }

  function stopFollowing() {
    state.job.generation += 1;
    state.job.running = false;
    clearTimeout(state.job.timer);
    state.job.timer = null;
  }

  // aria-disabled rather than disabled: a disabled button drops the keyboard focus the owner had on it.
  function jobButtons(busy) {
    for (const id of ['reindex-now', 'crawl-now']) {
      if (busy) $(id).setAttribute('aria-disabled', 'true');
      else $(id).removeAttribute('aria-disabled');
    }
  }

  function renderJob(job, note = '') {
    // The same job unchanged (a poll while nothing moved, the reload at its end) is not written again: a screen
    // reader would read the live status once more, and an open list of names would close.
    const shown = JSON.stringify([job, note]);
    if (shown === state.job.shown) return;
    state.job.shown = shown;
    const title = $('job-title');
    const summary = $('job-summary');
    const progress = $('job-progress');
    const status = $('job-status');
    const kind = JOB_KINDS[job.kind] || job.kind;
    title.textContent = (job.status === 'running' ? 'Running: ' : 'Latest job: ') + kind;
    title.hidden = false;
    summary.hidden = false;
    summary.textContent = (job.scheduled ? 'Started by the schedule ' : 'Started ') + when(job.started_at) +
      (job.finished_at ? ' · ended ' + when(job.finished_at) : '');
    status.classList.toggle('error', job.status === 'failed');
    if (job.status === 'running') {
      const [text, label, done, total] = jobProgress(job);
      progress.hidden = false;
      progress.setAttribute('aria-label', label);
      if (total > 0) {
        progress.max = total;
        progress.value = Math.min(done, total);
      } else {
        progress.removeAttribute('value'); // nothing known yet to measure: an indeterminate bar
      }
      status.textContent = note + text;
      $('job-result').replaceChildren();
      return;
    }
    progress.hidden = true;
    if (job.status === 'failed') {
      status.textContent = note + `The ${job.kind === 'crawl' ? 'crawl' : 'reindex'} failed: ${job.error || 'no reason given'}`;
    } else {
      status.textContent = note + `The ${job.kind === 'crawl' ? 'crawl' : 'reindex'} succeeded.` +
        (job.result ? ' ' + ingestLine(job.result) : '');
    }
    $('job-result').replaceChildren(...jobResult(job));
  }

  function jobProgress(job) {
    const crawl = job.crawl;
    if (crawl && !crawl.result && !crawl.not_due) {
      const total = crawl.done + crawl.queued;
      const text = total
        ? `Crawling: ${count(crawl.done)} of ${count(total)} addresses done, ${count(crawl.pages)} ${crawl.pages === 1 ? 'page' : 'pages'} so far.`
        : 'Crawling: starting…';
      return [text, 'Crawl progress', crawl.done, total];
    }
    if (job.to_embed > 0) {
      return [`Embedding: ${count(job.embedded)} of ${count(job.to_embed)} chunks.`, 'Embedding progress',
        job.embedded, job.to_embed];
    }
    return ['Reading the knowledge for changes…', 'Reindex progress', 0, 0];
  }

  function ingestLine(result) {
    const outcome = INGEST_OUTCOMES[result.status] || result.status;
    if (result.status === 'up_to_date') {
      return `${outcome}: ${count(result.files)} documents, ${count(result.chunks)} chunks, served as they were.`;
    }
    return `${outcome}: ${count(result.files)} documents, ${count(result.chunks)} chunks ` +
      `(${count(result.embedded)} embedded, ${count(result.reused)} reused); ` +
      `${count(result.added.length)} added, ${count(result.changed.length)} changed, ` +
      `${count(result.removed.length)} removed.`;
  }

  function jobResult(job) {
    const parts = [];
    const crawl = job.crawl;
    if (crawl && crawl.not_due) {
      parts.push(element('p', 'muted', 'Another replica had just crawled the website: nothing was crawled again.'));
    }
    const result = crawl && crawl.result;
    if (result) {
      const numbers = element('dl', 'headline compact');
      numbers.setAttribute('aria-label', 'Crawl result');
      for (const [label, value] of [
        ['Pages', result.pages], ['New', result.new], ['Changed', result.changed],
        ['Unchanged', result.unchanged], ['Removed', result.removed], ['Kept', result.kept],
      ]) {
        const group = element('div', 'stat');
        group.append(element('dt', null, label), element('dd', null, count(value)));
        numbers.append(group);
      }
      parts.push(numbers);
      if (!result.complete) {
        parts.push(element('p', 'warn-text', 'Not every start address could be read: no page was removed.'));
      }
      const skipped = Object.entries(result.skipped);
      if (skipped.length) {
        parts.push(element('h4', null, 'Skipped, by reason'));
        const list = element('ul', 'reasons');
        for (const [reason, n] of skipped) {
          const item = element('li');
          item.append(element('span', 'source-name', reason), ` ×${count(n)}`);
          list.append(item);
        }
        parts.push(list);
      }
      if (result.errors.length) {
        parts.push(element('h4', null, `Addresses that failed (${count(result.errors.length)})`));
        parts.push(crawlErrors(result.errors));
      }
    }
    const ingest = job.result;
    if (ingest) {
      const names = [['Added', ingest.added], ['Changed', ingest.changed], ['Removed', ingest.removed],
        ['Gave no text', ingest.skipped]].flatMap(([label, items]) => items.map((name) => [label, name]));
      if (names.length) {
        const details = element('details');
        details.append(element('summary', null, 'What this job changed, by name'));
        const list = element('ul', 'names');
        for (const [label, name] of names) {
          const item = element('li');
          item.append(element('span', 'label', label + ': '), element('span', 'source-name', name));
          list.append(item);
        }
        details.append(list);
        parts.push(details);
      }
    }
    return parts;
  }

  function crawlErrors(errors) {
    const wrap = element('div', 'table-wrap');
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', 'Addresses that failed table');
    const table = element('table', 'crawl-errors');
    const head = element('tr');
    for (const name of ['Address', 'Reason']) {
      const th = element('th', null, name);
      th.scope = 'col';
      head.append(th);
    }
    table.append(element('thead'), element('tbody'));
    table.tHead.append(head);
    for (const error of errors) {
      const row = element('tr');
      row.append(element('td', 'source-name', error.url), element('td', 'source-name nowrap', error.reason));
      table.tBodies[0].append(row);
    }
    wrap.append(table);
    return wrap;
  }

  // -- helpers ----------------------------------------------------------------------------------------------

  function pager(prefix, page, total, perPage) {
    const pages = Math.max(1, Math.ceil(total / perPage));
    $(prefix + '-page').textContent = total ? `Page ${page} of ${pages}` : '';
    $(prefix + '-prev').disabled = page <= 1;
    $(prefix + '-next').disabled = page >= pages;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function count(value) {
    return Number(value).toLocaleString('en');
  }

  function percent(rate) {
    return rate == null ? '–' : (Math.round(rate * 1000) / 10).toLocaleString('en') + '%';
  }

  function millis(value) {
    return value == null ? '–' : Math.round(value).toLocaleString('en') + ' ms';
  }

  function when(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('period').addEventListener('change', loadOverview);
    $('gaps-days').addEventListener('change', loadGaps);
    $('transcripts-form').addEventListener('submit', (event) => {
      event.preventDefault();
      state.transcripts.filters = transcriptFilters();
      $('conversation').hidden = true;
      loadTranscripts(1);
    });
    $('tr-prev').addEventListener('click', () => loadTranscripts(state.transcripts.page - 1));
    $('tr-next').addEventListener('click', () => loadTranscripts(state.transcripts.page + 1));
    $('leads-prev').addEventListener('click', () => loadLeads(Math.max(0, state.leads.offset - LEADS_PER_PAGE)));
    $('leads-next').addEventListener('click', () => loadLeads(state.leads.offset + LEADS_PER_PAGE));
    $('conversation-close').addEventListener('click', () => {
      $('conversation').hidden = true;
      $('transcripts-title').focus();
    });
    $('reindex-now').addEventListener('click', () => startJob('ingest'));
    $('crawl-now').addEventListener('click', () => startJob('crawl'));
    $('write-form').addEventListener('submit', saveWritten);
    $('write-cancel').addEventListener('click', () => $('write-dialog').close());
    $('write-dialog').addEventListener('close', () => {
      // Focus back where the owner was: the row's button (unless the answer was just written).
      if (state.writing && state.writing.isConnected) state.writing.querySelector('button')?.focus();
      state.writing = null;
    });
  }

  // For the curious owner's console and the browser tests: the charts and the numbers they were drawn from.
  window.kbAdmin = Object.freeze({ charts: state.charts, overview: () => state.overview });

  start();
})();
