/*! Knowledge-base chat widget. Embed with one tag:
 *  <script src="https://bot.example.com/widget.js" data-api="https://bot.example.com" defer></script>
 * Optional: data-title, data-greeting, data-color, data-position (right|left), data-placeholder,
 * data-lang (en|es|fr|de), data-starters ("First question?|Second question?").
 * Plain JS, no dependencies: it talks to its own API only. */
(() => {
  "use strict";

  // One widget per page, even when the snippet is pasted twice.
  if (window.__kbChatWidget) return;
  window.__kbChatWidget = true;

  // ---------------------------------------------------------------- configuration
  const script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  const attr = (name, fallback) => {
    const value = script ? script.getAttribute(`data-${name}`) : null;
    return value && value.trim() ? value.trim() : fallback;
  };
  // An absent or empty data-api means: the API lives where this script was served from.
  const apiBase = (() => {
    try {
      const origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
      return new URL(attr("api", origin), location.href).href.replace(/\/+$/, "");
    } catch (_) {
      return location.origin;
    }
  })();
  // ---------------------------------------------------------------- the interface's words
  // Every string the widget shows or gives to screen readers, per language. A key missing from one language
  // falls back to English rather than showing nothing.
  const STRINGS = {
    en: {
      title: "Chat with us",
      greeting: "Hi! How can I help you today?",
      placeholder: "Type your question…",
      status: "Online · replies in seconds",
      newConversation: "New conversation",
      close: "Close",
      openChat: "Open chat",
      closeChat: "Close chat",
      conversation: "Conversation",
      message: "Message",
      send: "Send",
      foot: "AI assistant · answers may not always be perfect",
      youSaid: "You said:",
      assistantSaid: "Assistant:",
      typing: "Assistant is typing",
      sources: "Sources",
      starters: "Suggested questions",
      rate: "Rate this answer",
      helpful: "Helpful",
      notHelpful: "Not helpful",
      feedbackThanks: "Thanks for your feedback",
      feedbackFailed: "Couldn't send feedback, please try again",
      comment: "What could be better? (optional)",
      skip: "Skip",
      sendFeedback: "Send feedback",
      network: "Sorry, I couldn't reach the assistant. Please check your connection and try again.",
      tooFast: "You're sending messages a little fast — please wait a moment and try again.",
      refused: "Sorry, I couldn't send that message. Please shorten or rephrase it and try again.",
      forbidden: "Sorry, the chat isn't available on this website right now.",
      other: "Sorry, something went wrong on our side. Please try again in a moment.",
      interrupted: "Sorry, the answer was interrupted. Please try again.",
      contactOffer: "Leave your details and a person will get back to you",
      contactTitle: "Leave your details",
      name: "Name",
      email: "E-mail",
      contactMessage: "How can we help?",
      consent: "I agree that my details are stored and used to contact me.",
      contactSend: "Send details",
      cancel: "Cancel",
      sending: "Sending…",
      needName: "Please enter your name.",
      badName: "Please check your name.",
      needEmail: "Please enter your e-mail address.",
      badEmail: "Please enter a valid e-mail address.",
      needMessage: "Please tell us briefly what you need.",
      badMessage: "Please shorten or check your message.",
      needConsent: "Please tick the box so that we may contact you.",
      leadThanks: "Thank you! We have your details, and a person will get back to you soon.",
      leadsOff: "Sorry, we can't take contact details here right now.",
      leadNetwork: "Sorry, your details couldn't be sent. Please check your connection and try again.",
      leadFailed: "Sorry, your details couldn't be sent. Please try again in a moment.",
    },
    es: {
      title: "Chatea con nosotros",
      greeting: "¡Hola! ¿En qué puedo ayudarte hoy?",
      placeholder: "Escribe tu pregunta…",
      status: "En línea · responde en segundos",
      newConversation: "Nueva conversación",
      close: "Cerrar",
      openChat: "Abrir chat",
      closeChat: "Cerrar chat",
      conversation: "Conversación",
      message: "Mensaje",
      send: "Enviar",
      foot: "Asistente de IA · sus respuestas no siempre son perfectas",
      youSaid: "Has dicho:",
      assistantSaid: "Asistente:",
      typing: "El asistente está escribiendo",
      sources: "Fuentes",
      starters: "Preguntas sugeridas",
      rate: "Valora esta respuesta",
      helpful: "Útil",
      notHelpful: "No útil",
      feedbackThanks: "Gracias por tu opinión",
      feedbackFailed: "No se pudo enviar tu opinión; inténtalo de nuevo",
      comment: "¿Qué podríamos mejorar? (opcional)",
      skip: "Omitir",
      sendFeedback: "Enviar opinión",
      network: "Lo siento, no he podido conectar con el asistente. Comprueba tu conexión e inténtalo de nuevo.",
      tooFast: "Estás enviando mensajes un poco rápido: espera un momento e inténtalo de nuevo.",
      refused: "Lo siento, no he podido enviar ese mensaje. Acórtalo o reformúlalo e inténtalo de nuevo.",
      forbidden: "Lo siento, el chat no está disponible en este sitio web ahora mismo.",
      other: "Lo siento, algo ha fallado por nuestra parte. Inténtalo de nuevo en un momento.",
      interrupted: "Lo siento, la respuesta se ha interrumpido. Inténtalo de nuevo.",
      contactOffer: "Deja tus datos y una persona se pondrá en contacto contigo",
      contactTitle: "Deja tus datos",
      name: "Nombre",
      email: "Correo electrónico",
      contactMessage: "¿En qué podemos ayudarte?",
      consent: "Acepto que mis datos se guarden y se usen para contactarme.",
      contactSend: "Enviar datos",
      cancel: "Cancelar",
      sending: "Enviando…",
      needName: "Escribe tu nombre.",
      badName: "Revisa tu nombre.",
      needEmail: "Escribe tu correo electrónico.",
      badEmail: "Escribe un correo electrónico válido.",
      needMessage: "Cuéntanos brevemente qué necesitas.",
      badMessage: "Acorta o revisa tu mensaje.",
      needConsent: "Marca la casilla para que podamos contactarte.",
      leadThanks: "¡Gracias! Tenemos tus datos y una persona se pondrá en contacto contigo pronto.",
      leadsOff: "Lo siento, ahora mismo no podemos recoger datos de contacto aquí.",
      leadNetwork: "Lo siento, no se han podido enviar tus datos. Comprueba tu conexión e inténtalo de nuevo.",
      leadFailed: "Lo siento, no se han podido enviar tus datos. Inténtalo de nuevo en un momento.",
    },
    fr: {
      title: "Discutons",
      greeting: "Bonjour\u00a0! Comment puis-je vous aider aujourd’hui\u00a0?",
      placeholder: "Posez votre question…",
      status: "En ligne · réponses en quelques secondes",
      newConversation: "Nouvelle conversation",
      close: "Fermer",
      openChat: "Ouvrir le chat",
      closeChat: "Fermer le chat",
      conversation: "Conversation",
      message: "Message",
      send: "Envoyer",
      foot: "Assistant IA · ses réponses ne sont pas toujours parfaites",
      youSaid: "Vous avez dit\u00a0:",
      assistantSaid: "Assistant\u00a0:",
      typing: "L’assistant écrit",
      sources: "Sources",
      starters: "Questions suggérées",
      rate: "Évaluer cette réponse",
      helpful: "Utile",
      notHelpful: "Pas utile",
      feedbackThanks: "Merci pour votre avis",
      feedbackFailed: "Impossible d’envoyer votre avis, veuillez réessayer",
      comment: "Que pourrions-nous améliorer\u00a0? (facultatif)",
      skip: "Passer",
      sendFeedback: "Envoyer l’avis",
      network: "Désolé, impossible de joindre l’assistant. Vérifiez votre connexion et réessayez.",
      tooFast: "Vous envoyez des messages un peu vite — patientez un instant puis réessayez.",
      refused: "Désolé, ce message n’a pas pu être envoyé. Raccourcissez-le ou reformulez-le, puis réessayez.",
      forbidden: "Désolé, le chat n’est pas disponible sur ce site pour le moment.",
      other: "Désolé, une erreur s’est produite de notre côté. Réessayez dans un instant.",
      interrupted: "Désolé, la réponse a été interrompue. Veuillez réessayer.",
      contactOffer: "Laissez vos coordonnées et une personne vous recontactera",
      contactTitle: "Laissez vos coordonnées",
      name: "Nom",
      email: "Adresse e-mail",
      contactMessage: "Comment pouvons-nous vous aider\u00a0?",
      consent: "J’accepte que mes coordonnées soient enregistrées et utilisées pour me recontacter.",
      contactSend: "Envoyer mes coordonnées",
      cancel: "Annuler",
      sending: "Envoi en cours…",
      needName: "Veuillez indiquer votre nom.",
      badName: "Veuillez vérifier votre nom.",
      needEmail: "Veuillez indiquer votre adresse e-mail.",
      badEmail: "Veuillez indiquer une adresse e-mail valide.",
      needMessage: "Dites-nous en quelques mots ce dont vous avez besoin.",
      badMessage: "Veuillez raccourcir ou vérifier votre message.",
      needConsent: "Veuillez cocher la case pour que nous puissions vous recontacter.",
      leadThanks: "Merci\u00a0! Nous avons bien vos coordonnées\u00a0; une personne vous recontactera bientôt.",
      leadsOff: "Désolé, nous ne pouvons pas recueillir de coordonnées ici pour le moment.",
      leadNetwork: "Désolé, vos coordonnées n’ont pas pu être envoyées. Vérifiez votre connexion et réessayez.",
      leadFailed: "Désolé, vos coordonnées n’ont pas pu être envoyées. Réessayez dans un instant.",
    },
    de: {
      title: "Chatten Sie mit uns",
      greeting: "Hallo! Wie kann ich Ihnen heute helfen?",
      placeholder: "Ihre Frage…",
      status: "Online · antwortet in Sekunden",
      newConversation: "Neues Gespräch",
      close: "Schließen",
      openChat: "Chat öffnen",
      closeChat: "Chat schließen",
      conversation: "Gespräch",
      message: "Nachricht",
      send: "Senden",
      foot: "KI-Assistent · Antworten sind nicht immer perfekt",
      youSaid: "Sie schrieben:",
      assistantSaid: "Assistent:",
      typing: "Der Assistent schreibt",
      sources: "Quellen",
      starters: "Vorgeschlagene Fragen",
      rate: "Diese Antwort bewerten",
      helpful: "Hilfreich",
      notHelpful: "Nicht hilfreich",
      feedbackThanks: "Danke für Ihr Feedback",
      feedbackFailed: "Feedback nicht gesendet, bitte versuchen Sie es erneut",
      comment: "Was könnten wir besser machen? (optional)",
      skip: "Überspringen",
      sendFeedback: "Feedback senden",
      network: "Der Assistent ist gerade nicht erreichbar. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
      tooFast: "Sie senden Nachrichten etwas schnell – bitte warten Sie einen Moment und versuchen Sie es dann erneut.",
      refused: "Diese Nachricht konnte nicht gesendet werden. Bitte kürzen oder formulieren Sie sie um.",
      forbidden: "Der Chat ist auf dieser Website gerade nicht verfügbar.",
      other: "Bei uns ist etwas schiefgegangen. Bitte versuchen Sie es gleich noch einmal.",
      interrupted: "Die Antwort wurde unterbrochen. Bitte versuchen Sie es erneut.",
      contactOffer: "Hinterlassen Sie Ihre Kontaktdaten, und ein Mensch meldet sich bei Ihnen",
      contactTitle: "Ihre Kontaktdaten",
      name: "Name",
      email: "E-Mail-Adresse",
      contactMessage: "Wie können wir helfen?",
      consent: "Ich bin einverstanden, dass meine Angaben gespeichert und für die Kontaktaufnahme genutzt werden.",
      contactSend: "Daten senden",
      cancel: "Abbrechen",
      sending: "Wird gesendet…",
      needName: "Bitte geben Sie Ihren Namen ein.",
      badName: "Bitte prüfen Sie Ihren Namen.",
      needEmail: "Bitte geben Sie Ihre E-Mail-Adresse ein.",
      badEmail: "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
      needMessage: "Bitte schreiben Sie kurz, worum es geht.",
      badMessage: "Bitte kürzen oder prüfen Sie Ihre Nachricht.",
      needConsent: "Bitte stimmen Sie zu, damit wir Sie kontaktieren dürfen.",
      leadThanks: "Vielen Dank! Wir haben Ihre Daten, und ein Mensch meldet sich bald bei Ihnen.",
      leadsOff: "Leider können wir hier gerade keine Kontaktdaten entgegennehmen.",
      leadNetwork: "Ihre Daten konnten nicht gesendet werden. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
      leadFailed: "Ihre Daten konnten nicht gesendet werden. Bitte versuchen Sie es gleich noch einmal.",
    },
  };
  // "es-MX" speaks Spanish; an unknown language (or a key like "constructor") gets English.
  const LANG = (() => {
    const code = attr("lang", "en").toLowerCase().split(/[-_]/)[0];
    return Object.prototype.hasOwnProperty.call(STRINGS, code) ? code : "en";
  })();
  const T = { ...STRINGS.en, ...STRINGS[LANG] };

  const color = attr("color", "");
  const config = {
    title: attr("title", T.title),
    greeting: attr("greeting", T.greeting),
    placeholder: attr("placeholder", T.placeholder),
    color: color && window.CSS && CSS.supports("color", color) ? color : "#2563eb",
    left: attr("position", "right").toLowerCase() === "left",
  };

  // Starter questions: a few short ones, so that they fit the panel as buttons. The page's own list wins
  // over the server's (STARTER_QUESTIONS, read from /widget/config).
  const MAX_STARTERS = 4;
  const STARTER_CHARS = 100; // longer ones are shown cut (the whole question is still what is asked)
  function cleanStarters(list) {
    const seen = new Set();
    for (const item of Array.isArray(list) ? list : []) {
      const text = typeof item === "string" ? item.replace(/\s+/g, " ").trim() : "";
      if (text && !seen.has(text)) seen.add(text);
      if (seen.size === MAX_STARTERS) break;
    }
    return [...seen];
  }
  const pageStarters = cleanStarters(attr("starters", "").split("|"));

  const SESSION_KEY = "kbchat:session";
  const OPEN_KEY = "kbchat:open";
  const LEAD_KEY = "kbchat:lead"; // the conversation whose visitor has left their details: offered no more
  const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
  const MESSAGES = {
    network: T.network,
    429: T.tooFast,
    422: T.refused,
    403: T.forbidden,
    other: T.other,
    interrupted: T.interrupted,
  };
  const COMMENT_CHARS = 1000; // what the server keeps of a comment
  // The contact form's limits: generous, the server has the last word (its 422 is shown by the field).
  const LEAD_LIMITS = { name: 200, email: 320, message: 4000 };
  // Deliberately loose: the server validates properly; this only catches the obvious slip before a request.
  const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+$/;

  // Storage can be missing or throw (private modes, sandboxed frames): the widget then just forgets.
  const storage = {
    get(area, key) {
      try {
        return window[area].getItem(key);
      } catch (_) {
        return null;
      }
    },
    set(area, key, value) {
      try {
        window[area].setItem(key, value);
      } catch (_) {
        /* not remembered: fine */
      }
    },
  };

  function newSessionId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // randomUUID needs a secure context; getRandomValues does not. Same v4 layout.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const storedId = storage.get("localStorage", SESSION_KEY);
  const hadSession = Boolean(storedId && ID_PATTERN.test(storedId));
  let sessionId = hadSession ? storedId : newSessionId();
  storage.set("localStorage", SESSION_KEY, sessionId);

  // ---------------------------------------------------------------- look
  // Everything is scoped to the shadow root. `:host` rules need !important: the host element itself is
  // still matched by the page's own rules (`* {...}`), and inner !important beats outer !important.
  const CSS_TEXT = `
:host{all:initial!important;display:block!important;position:fixed!important;right:0!important;bottom:0!important;
  width:0!important;height:0!important;z-index:2147483000!important}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
.kb{--accent:#2563eb;--on-accent:#fff;--shade:#000;--link:#2563eb;font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",
  Arial,"Noto Sans","Liberation Sans",sans-serif;font-size:15px;line-height:1.5;color:#0f172a;text-align:left;
  letter-spacing:normal;-webkit-font-smoothing:antialiased}
button,textarea,input{font:inherit;color:inherit;margin:0}
button{cursor:pointer;border:0;background:none;padding:0}
svg{display:block;width:20px;height:20px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.launcher{position:fixed;right:24px;bottom:24px;width:60px;height:60px;border-radius:50%;display:grid;place-items:center;
  background:var(--accent);color:var(--on-accent);box-shadow:0 12px 28px -6px rgba(15,23,42,.4),0 4px 10px -4px rgba(15,23,42,.3);
  transition:transform .2s ease}
.launcher:hover{transform:scale(1.06)}
.launcher svg{grid-area:1/1;width:26px;height:26px;transition:opacity .2s,transform .2s}
.launcher .i-close,.open .launcher .i-chat{opacity:0;transform:rotate(-90deg) scale(.6)}
.open .launcher .i-close{opacity:1;transform:none}
.panel{position:fixed;right:24px;bottom:100px;width:400px;height:min(620px,calc(100vh - 124px));display:flex;
  flex-direction:column;overflow:hidden;background:#fff;border-radius:20px;
  box-shadow:0 28px 70px -16px rgba(15,23,42,.38),0 0 0 1px rgba(15,23,42,.07);
  opacity:0;transform:translateY(16px) scale(.98);transform-origin:bottom right;visibility:hidden;
  transition:opacity .2s ease,transform .2s ease,visibility 0s linear .2s}
.open .panel{opacity:1;transform:none;visibility:visible;transition:opacity .2s ease,transform .2s ease,visibility 0s}
.left .launcher,.left .panel{right:auto;left:24px;transform-origin:bottom left}
.head{display:flex;align-items:center;gap:12px;padding:16px 12px 16px 18px;color:var(--on-accent);background:var(--accent);
  background:linear-gradient(135deg,var(--accent),color-mix(in srgb,var(--accent) 75%,var(--shade)))}
.avatar{flex:none;width:40px;height:40px;border-radius:50%;display:grid;place-items:center;background:rgba(255,255,255,.2)}
.head-text{flex:1;min-width:0}
.title{margin:0;font-size:16px;font-weight:650;line-height:1.3;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status{margin:1px 0 0;font-size:12.5px;opacity:.88;display:flex;align-items:center;gap:6px}
.status::before{content:"";width:7px;height:7px;border-radius:50%;background:#4ade80;box-shadow:0 0 0 2px rgba(255,255,255,.3)}
.icon-btn{flex:none;width:36px;height:36px;border-radius:10px;display:grid;place-items:center;opacity:.9}
.icon-btn:hover{opacity:1;background:rgba(255,255,255,.16)}
.head :focus-visible{outline-color:currentColor;outline-offset:0}
.log{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:20px 16px 12px;display:flex;flex-direction:column;gap:14px;
  background:#f8fafc}
.log:focus-visible{outline-offset:-3px}
.msg{display:flex;flex-direction:column;max-width:94%;align-self:flex-start;align-items:flex-start}
.msg.user{max-width:82%;align-self:flex-end;align-items:flex-end}
.bubble{padding:10px 14px;border-radius:18px;overflow-wrap:anywhere}
.assistant .bubble{background:#fff;border:1px solid #e2e8f0;border-bottom-left-radius:6px;box-shadow:0 1px 2px rgba(15,23,42,.05)}
.user .bubble{background:var(--accent);color:var(--on-accent);border-bottom-right-radius:6px;white-space:pre-wrap}
.bubble.notice{background:#fff7ed;border-color:#fed7aa;color:#9a3412}
.bubble p,.bubble ul{margin:0}
.bubble p+p,.bubble p+ul,.bubble ul+p{margin-top:8px}
.bubble ul{padding-left:20px}
.bubble li+li{margin-top:3px}
.bubble strong{font-weight:650}
.bubble a{color:var(--link);text-decoration:underline;text-underline-offset:2px}
.sources{margin-top:8px;display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.sources-label{font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.06em;color:#64748b;margin-right:2px}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0;list-style:none}
.chip{font-size:12px;line-height:1.2;padding:5px 10px;border-radius:999px;color:#334155;background:#fff;border:1px solid #e2e8f0}
.chip a{color:var(--link);text-decoration:underline;text-underline-offset:2px}
.feedback{margin-top:6px;display:flex;flex-direction:column;align-items:flex-start;gap:6px}
.rate-row{display:flex;align-items:center;gap:8px;min-height:28px}
.rate{display:flex;gap:2px}
.thumb{width:28px;height:28px;border-radius:8px;display:grid;place-items:center;color:#64748b;
  transition:color .15s,background-color .15s}
.thumb svg{width:16px;height:16px}
.thumb:hover{color:#334155;background:#e2e8f0}
.thumb[aria-pressed="true"]{color:var(--link);background:rgba(37,99,235,.1);
  background:color-mix(in srgb,var(--accent) 14%,transparent)}
.thumb[aria-pressed="true"] svg{fill:currentColor;fill-opacity:.25}
.fb-status{margin:0;font-size:12px;line-height:1.3;color:#64748b}
.fb-status.bad{color:#9a3412}
.comment{width:300px;max-width:100%;display:flex;flex-direction:column;gap:6px;padding:10px;background:#fff;
  border:1px solid #e2e8f0;border-radius:14px}
.comment label{font-size:12.5px;font-weight:600;color:#334155}
.comment textarea{flex:none;min-height:64px;max-height:none;padding:8px 10px;border-radius:10px;font-size:14px;resize:vertical}
.comment-actions{display:flex;justify-content:flex-end;gap:6px}
.comment-actions button{padding:6px 12px;border-radius:10px;font-size:13px;font-weight:600;line-height:1.3}
.skip{color:#475569}
.skip:hover{background:#f1f5f9}
.comment-send{background:var(--accent);color:var(--on-accent)}
.comment-send:hover:not(:disabled){filter:brightness(.93)}
.comment-send:disabled{opacity:.4;cursor:default}
.starters{display:flex;flex-direction:column;align-items:flex-end;gap:8px;margin-top:-4px}
.starter{max-width:88%;padding:8px 14px;border-radius:16px;border:1px solid #cbd5e1;background:#fff;color:#1e293b;
  font-size:14px;line-height:1.35;text-align:left;overflow-wrap:anywhere;transition:background-color .15s,border-color .15s}
.starter:hover{border-color:var(--accent);background:#f1f5f9}
.contact-offer{margin-top:8px}
.offer{display:inline-flex;align-items:center;gap:8px;padding:8px 12px;border-radius:12px;border:1px solid #cbd5e1;
  background:#fff;color:#1e293b;font-size:13.5px;font-weight:600;line-height:1.35;text-align:left}
.offer svg{flex:none;width:16px;height:16px;color:#475569}
.offer:hover{border-color:var(--accent);background:#f1f5f9}
.contact{width:320px;max-width:100%;display:flex;flex-direction:column;gap:10px;padding:14px;background:#fff;
  border:1px solid #e2e8f0;border-radius:14px;box-shadow:0 1px 2px rgba(15,23,42,.05)}
.contact-title{margin:0;font-size:14.5px;font-weight:650;line-height:1.3;color:#0f172a}
.field{display:flex;flex-direction:column;gap:4px}
.field>label{font-size:12.5px;font-weight:600;color:#334155}
.contact input[type=text],.contact input[type=email],.contact textarea{width:100%;min-height:0;max-height:none;
  padding:8px 10px;border:1px solid #94a3b8;border-radius:10px;background:#fff;font-size:14px;line-height:1.4;outline:none}
.contact textarea{flex:none;min-height:64px;resize:vertical}
.contact input:focus,.contact textarea:focus{border-color:var(--accent);box-shadow:0 0 0 3px rgba(37,99,235,.18);
  box-shadow:0 0 0 3px color-mix(in srgb,var(--accent) 22%,transparent)}
.contact input:not([type=checkbox]):focus-visible{outline:none}
.contact input[aria-invalid=true],.contact textarea[aria-invalid=true]{border-color:#b91c1c}
.consent{flex-direction:row;flex-wrap:wrap;align-items:flex-start;gap:4px 8px}
.consent input{flex:none;width:18px;height:18px;margin-top:1px;accent-color:var(--accent)}
.consent input:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.consent label{flex:1;min-width:0;font-size:12.5px;line-height:1.4;color:#334155}
.consent .field-error{flex-basis:100%}
.field-error,.contact-status{margin:0;font-size:12.5px;line-height:1.35;color:#b91c1c}
.field-error:empty,.contact-status:empty{display:none}
.contact-status.info{color:#475569}
.contact-actions{display:flex;justify-content:flex-end;gap:6px}
.contact-actions button{padding:7px 14px;border-radius:10px;font-size:13.5px;font-weight:600;line-height:1.3}
.contact-send{background:var(--accent);color:var(--on-accent)}
.contact-send:hover{filter:brightness(.93)}
.lead-done{margin:8px 0 0;padding:8px 12px;border-radius:12px;background:#f0fdf4;border:1px solid #bbf7d0;color:#166534;
  font-size:13.5px;line-height:1.4}
.lead-done:focus{outline:none}
.typing{display:flex;gap:5px;padding:6px 2px}
.typing span{width:7px;height:7px;border-radius:50%;background:#94a3b8;animation:kb-bounce 1.2s infinite ease-in-out}
.typing span:nth-child(2){animation-delay:.15s}
.typing span:nth-child(3){animation-delay:.3s}
@keyframes kb-bounce{0%,60%,100%{transform:none;opacity:.45}30%{transform:translateY(-5px);opacity:1}}
.composer{display:flex;align-items:flex-end;gap:8px;padding:12px 12px 6px;border-top:1px solid #e2e8f0;background:#fff}
textarea{flex:1;min-height:46px;max-height:140px;resize:none;padding:11px 14px;border:1px solid #cbd5e1;border-radius:14px;
  background:#fff;line-height:1.45;font-size:15px;outline:none}
textarea::placeholder{color:#94a3b8}
textarea:focus-visible{outline:none}
textarea:focus{border-color:var(--accent);box-shadow:0 0 0 3px rgba(37,99,235,.18);
  box-shadow:0 0 0 3px color-mix(in srgb,var(--accent) 22%,transparent)}
.send{flex:none;width:46px;height:46px;border-radius:14px;display:grid;place-items:center;background:var(--accent);
  color:var(--on-accent);transition:opacity .15s}
.send:hover:not(:disabled){filter:brightness(.93)}
.send:disabled{opacity:.4;cursor:default}
.foot{margin:0;padding:2px 12px calc(10px + env(safe-area-inset-bottom,0px));text-align:center;font-size:11.5px;color:#64748b;background:#fff}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
.still *{transition:none!important}
@media (max-width:480px){
  .kb .panel{inset:0;width:100%;height:100%;border-radius:0}
  .open .launcher{display:none}
  .kb .launcher{right:16px;bottom:16px}
  .left .launcher{right:auto;left:16px}
  textarea,.comment textarea,.contact textarea,.contact input[type=text],.contact input[type=email]{font-size:16px}
}
@media (prefers-reduced-motion:reduce){
  *,*::before,*::after{animation:none!important;transition:none!important}
  .typing span{opacity:.7}
}`;

  const svg = (paths, cls = "") =>
    `<svg class="${cls}" viewBox="0 0 24 24" aria-hidden="true" focusable="false">${paths}</svg>`;
  const ICON = {
    chat: svg('<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/>', "i-chat"),
    close: svg('<path d="M18 6 6 18M6 6l12 12"/>', "i-close"),
    compose: svg('<path d="M12 20h9"/><path d="M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z"/>'),
    send: svg('<path d="m22 2-11 11"/><path d="m22 2-7 20-4-9-9-4z"/>'),
    up: svg('<path d="M7 10v12"/><path d="M15 5.88 14 10h5.83a2 2 0 0 1 1.92 2.56l-2.33 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.76a2 2 0 0 0 1.79-1.11L12 2a3.13 3.13 0 0 1 3 3.88Z"/>'),
    down: svg('<path d="M17 14V2"/><path d="M9 18.12 10 14H4.17a2 2 0 0 1-1.92-2.56l2.33-8A2 2 0 0 1 6.5 2H20a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2h-2.76a2 2 0 0 0-1.79 1.11L12 22a3.13 3.13 0 0 1-3-3.88Z"/>'),
    spark: svg('<path d="M12 3l1.8 5.2L19 10l-5.2 1.8L12 17l-1.8-5.2L5 10l5.2-1.8z"/><path d="M19 16v4M17 18h4"/>'),
    person: svg('<path d="M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2"/><circle cx="12" cy="7" r="4"/>'),
  };

  // Static markup only: every string, the widget's own words included, goes in through textContent and
  // setAttribute in mount(). The panel's head is a plain <div>: a <header> would be a second banner landmark
  // on the host page.
  const TEMPLATE = `
<div class="kb">
  <section class="panel" role="dialog" aria-modal="false">
    <div class="head">
      <div class="avatar">${ICON.spark}</div>
      <div class="head-text"><h2 class="title"></h2><p class="status"></p></div>
      <button type="button" class="icon-btn new">${ICON.compose}</button>
      <button type="button" class="icon-btn close">${ICON.close}</button>
    </div>
    <div class="log" role="log" aria-live="polite" aria-busy="false" tabindex="0"></div>
    <form class="composer">
      <textarea rows="1" maxlength="2000"></textarea>
      <button type="submit" class="send" disabled>${ICON.send}</button>
    </form>
    <p class="foot"></p>
  </section>
  <button type="button" class="launcher" aria-expanded="false">${ICON.chat}${ICON.close}</button>
</div>`;

  // ---------------------------------------------------------------- safe rendering of untrusted text
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Only absolute http(s) URLs become links: `javascript:`, `data:` and relative ones stay text.
  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(href, label) {
    const a = el("a", "", label);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  // **bold** | [text](url), the url allowing one level of parentheses | a bare http(s) URL.
  const INLINE = /\*\*([^*\n]+)\*\*|\[([^\]\n]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)|(https?:\/\/[^\s<>"'`]+)/gi;

  function renderInline(parent, text) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      parent.append(text.slice(last, match.index));
      last = match.index + match[0].length;
      if (match[1] !== undefined) {
        parent.append(el("strong", "", match[1]));
      } else if (match[2] !== undefined) {
        const href = safeUrl(match[3]);
        parent.append(href ? link(href, match[2]) : match[2]);
      } else {
        // Sentence punctuation after a URL is not part of it; nor is a ")" that opens nowhere.
        let raw = match[4];
        let tail = /[.,;:!?]+$/.exec(raw);
        tail = tail ? tail[0] : "";
        raw = raw.slice(0, raw.length - tail.length);
        if (raw.endsWith(")") && !raw.includes("(")) {
          raw = raw.slice(0, -1);
          tail = `)${tail}`;
        }
        const href = safeUrl(raw);
        parent.append(href ? link(href, raw) : raw, tail);
      }
    }
    parent.append(text.slice(last));
  }

  // Paragraphs, line breaks, "- "/"* " bullet lists and "#" headings (shown bold): DOM calls only.
  function renderRich(target, text) {
    target.textContent = "";
    let list = null;
    let para = null;
    for (const line of text.split("\n")) {
      const bullet = /^\s*[-*]\s+(.*)$/.exec(line);
      if (bullet) {
        para = null;
        if (!list) target.append((list = el("ul")));
        const item = el("li");
        renderInline(item, bullet[1]);
        list.append(item);
        continue;
      }
      list = null;
      if (!line.trim()) {
        para = null;
        continue;
      }
      if (para) para.append(el("br"));
      else target.append((para = el("p")));
      const heading = /^#{1,6}\s+(.*)$/.exec(line);
      if (heading) para.append(el("strong", "", heading[1]));
      else renderInline(para, line);
    }
  }

  // ---------------------------------------------------------------- the widget
  function mount() {
    const host = el("div");
    host.setAttribute("data-kbchat", "");
    const root = host.attachShadow({ mode: "open" });
    // A constructed style sheet is not inline CSS: the widget works on pages whose CSP forbids inline styles.
    if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS_TEXT);
      root.adoptedStyleSheets = [sheet];
      root.innerHTML = TEMPLATE;
    } else {
      root.innerHTML = `<style>${CSS_TEXT}</style>${TEMPLATE}`;
    }
    document.body.append(host);

    const $ = (selector) => root.querySelector(selector);
    const kb = $(".kb");
    const panel = $(".panel");
    const logEl = $(".log");
    const input = $("textarea");
    const sendBtn = $(".send");
    const launcher = $(".launcher");

    kb.style.setProperty("--accent", config.color);
    const light = isLight(config.color, root);
    kb.style.setProperty("--on-accent", light ? "#0f172a" : "#fff");
    kb.style.setProperty("--shade", light ? "#fff" : "#000"); // the header's gradient keeps its contrast
    kb.style.setProperty("--link", light ? "#0f172a" : config.color);
    kb.classList.toggle("left", config.left);
    kb.lang = LANG;
    $(".title").textContent = config.title;
    panel.setAttribute("aria-label", config.title);
    $(".status").textContent = T.status;
    for (const [selector, label] of [
      [".new", T.newConversation],
      [".close", T.close],
    ]) {
      $(selector).setAttribute("aria-label", label);
      $(selector).title = label;
    }
    logEl.setAttribute("aria-label", T.conversation);
    input.setAttribute("aria-label", T.message);
    input.placeholder = config.placeholder;
    sendBtn.setAttribute("aria-label", T.send);
    $(".foot").textContent = T.foot;
    launcher.setAttribute("aria-label", T.openChat);

    let isOpen = false;
    let started = false;
    let busy = false;
    let controller = null; // aborts the reply in flight when the conversation is reset
    let generation = 0; // replies and history from an older conversation are dropped
    let restoring = false; // starters wait until it is known whether the conversation is empty
    let starters = pageStarters;
    let leads = false; // whether the server takes contact details: only once /widget/config says so
    let configLoaded = null; // that request's promise, made once, when the chat is first opened
    let configKnown = false; // it has answered (or failed): what it said can be acted on at once
    let leadSent = storage.get("localStorage", LEAD_KEY) === sessionId;
    let offerEl = null; // the one "leave your details" offer in the conversation, where it was last made
    let contactOpen = false;
    let formCount = 0;

    function setBusy(value) {
      busy = value;
      logEl.setAttribute("aria-busy", String(value));
      updateSend();
    }

    function updateSend() {
      sendBtn.disabled = busy || !input.value.trim();
    }

    function autosize() {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
    }

    // Follow a growing answer, unless the visitor scrolled up to read something.
    function scrollDown(force) {
      const gap = logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight;
      if (force || gap < 120) logEl.scrollTop = logEl.scrollHeight;
    }

    function addMessage(role, text, sources) {
      const row = el("div", `msg ${role}`);
      row.append(el("span", "sr", role === "user" ? T.youSaid : T.assistantSaid));
      const bubble = el("div", "bubble");
      row.append(bubble);
      if (role === "user") bubble.textContent = text;
      else renderRich(bubble, text);
      if (sources) addSources(row, sources);
      logEl.append(row);
      scrollDown(true);
      return { row, bubble };
    }

    // Titles are deduplicated: several passages often come from one page. A web page (an http(s) URL) is a
    // link, opened in a new tab without handing it this page (noopener); a file path is shown as text.
    function addSources(row, sources) {
      const seen = new Set();
      const list = el("ul", "chips");
      for (const source of Array.isArray(sources) ? sources : []) {
        const title = source && typeof source.title === "string" ? source.title.trim() : "";
        if (!title || seen.has(title)) continue;
        seen.add(title);
        const chip = el("li", "chip");
        const href = typeof source.source === "string" ? safeUrl(source.source) : null;
        if (href) chip.append(link(href, title));
        else chip.textContent = title;
        if (typeof source.source === "string") chip.title = source.source;
        list.append(chip);
      }
      if (!seen.size) return;
      const wrap = el("div", "sources");
      wrap.append(el("span", "sources-label", T.sources), list);
      row.append(wrap);
    }

    // Thumbs under a finished answer that the server recorded (its `done` event named it). A thumbs-down
    // also opens an optional comment box. A later vote replaces the earlier one, server side as well.
    let commentCount = 0;
    function addFeedback(row, answerId) {
      const wrap = el("div", "feedback");
      const line = el("div", "rate-row");
      const group = el("div", "rate");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", T.rate);
      const thumb = (rating, label) => {
        const button = el("button", `thumb ${rating}`);
        button.type = "button";
        button.title = label;
        button.setAttribute("aria-label", label);
        button.setAttribute("aria-pressed", "false");
        button.innerHTML = ICON[rating]; // static markup
        button.addEventListener("click", () => vote(rating));
        group.append(button);
        return button;
      };
      const up = thumb("up", T.helpful);
      const down = thumb("down", T.notHelpful);
      const status = el("p", "fb-status");
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      line.append(group, status);
      wrap.append(line);
      row.append(wrap);

      let chosen = null; // the rating the server has taken
      let latest = 0; // only the newest request speaks
      let queue = Promise.resolve(); // one request at a time, in order: the last vote is the one kept
      let box = null;
      let saying = 0;

      function press(rating) {
        up.setAttribute("aria-pressed", String(rating === "up"));
        down.setAttribute("aria-pressed", String(rating === "down"));
      }

      function say(text, bad) {
        // Emptied first, so that the same words said again (a changed vote) are announced again.
        clearTimeout(saying);
        status.textContent = "";
        saying = setTimeout(() => {
          status.classList.toggle("bad", bad);
          status.textContent = text;
        }, 50);
      }

      function post(rating, comment) {
        const mine = ++latest;
        const body = { answer_id: answerId, rating };
        if (comment) body.comment = comment;
        const sent = queue.then(async () => {
          const response = await fetch(`${apiBase}/feedback`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify(body),
          });
          if (!response.ok) throw new Error(`feedback: ${response.status}`);
        });
        queue = sent.catch(() => {});
        return sent.then(
          () => {
            if (mine === latest) {
              chosen = rating;
              say(T.feedbackThanks, false);
            }
            return true;
          },
          () => {
            if (mine === latest) {
              press(chosen); // the buttons show what the server has, so a retry is one click away
              say(T.feedbackFailed, true);
            }
            return false;
          }
        );
      }

      function vote(rating) {
        const pressed = (rating === "up" ? up : down).getAttribute("aria-pressed") === "true";
        if (rating === "down") {
          openBox();
          offerContact(row); // an answer that did not help: a person may
        } else closeBox(false);
        if (pressed) return; // already the answer's rating: nothing new to send
        press(rating);
        post(rating);
      }

      function openBox() {
        if (box) {
          box.querySelector("textarea").focus();
          return;
        }
        const id = `kb-comment-${++commentCount}`;
        box = el("form", "comment");
        const label = el("label", "", T.comment);
        label.htmlFor = id;
        const text = el("textarea");
        text.id = id;
        text.rows = 3;
        text.maxLength = COMMENT_CHARS;
        const actions = el("div", "comment-actions");
        const skip = el("button", "skip", T.skip);
        skip.type = "button";
        const send = el("button", "comment-send", T.send);
        send.type = "submit";
        send.setAttribute("aria-label", T.sendFeedback);
        send.disabled = true;
        actions.append(skip, send);
        box.append(label, text, actions);
        wrap.append(box);

        let sending = false; // a second press meanwhile is ignored; the button keeps its focus
        const update = () => {
          send.disabled = !text.value.trim();
        };
        text.addEventListener("input", update);
        skip.addEventListener("click", () => closeBox(true));
        box.addEventListener("keydown", (event) => {
          if (event.key === "Escape") {
            event.stopPropagation(); // the comment box closes, not the whole chat
            closeBox(true);
          }
        });
        const mine = box;
        box.addEventListener("submit", async (event) => {
          event.preventDefault();
          const comment = text.value.trim();
          if (!comment || sending) return;
          sending = true;
          press("down");
          const sent = await post("down", comment);
          sending = false;
          if (sent && box === mine) closeBox(true);
        });
        text.focus();
        scrollDown();
      }

      function closeBox(refocus) {
        if (!box) return;
        const hadFocus = box.contains(root.activeElement);
        box.remove();
        box = null;
        if (refocus && hadFocus) down.focus();
      }
    }

    function showNotice(reply, message) {
      const notice = el("div", "bubble notice", message);
      if (reply.bubble.textContent) reply.row.append(notice);
      else reply.bubble.replaceWith(notice);
      scrollDown();
    }

    function showGreeting() {
      addMessage("assistant", config.greeting);
    }

    // ------------------------------------------------------------ starter questions
    function hideStarters() {
      const shown = logEl.querySelector(".starters");
      if (shown) shown.remove();
    }

    // Only in a conversation with nothing asked yet (the greeting alone), and never twice.
    function showStarters() {
      hideStarters();
      if (!starters.length || restoring || busy || logEl.querySelector(".msg.user")) return;
      const group = el("div", "starters");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", T.starters);
      for (const question of starters) {
        const short = question.length > STARTER_CHARS;
        const button = el("button", "starter", short ? `${question.slice(0, STARTER_CHARS - 1).trimEnd()}…` : question);
        button.type = "button";
        if (short) button.title = question;
        button.addEventListener("click", () => {
          if (busy) return;
          input.focus(); // the button goes away with the others: focus stays in the composer
          send(question);
        });
        group.append(button);
      }
      logEl.append(group);
    }

    // Cheap and cached for a minute; any failure (an older server, a refused page) just means: no extras.
    function loadConfig() {
      if (configLoaded) return configLoaded;
      configLoaded = fetch(`${apiBase}/widget/config`, { headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((data) => {
          if (!data || typeof data !== "object") return;
          leads = data.leads === true;
          if (!pageStarters.length) {
            starters = cleanStarters(data.starters);
            showStarters();
          }
        })
        .catch(() => {})
        .finally(() => {
          configKnown = true;
        });
      return configLoaded;
    }

    // ------------------------------------------------------------ contact form (lead capture)
    // Offered under a reply the bot could not answer, or under an answer rated down; one offer at a time
    // (the newest place wins), none once the visitor has left their details in this conversation.
    function offerContact(row) {
      // At once when the config is known (the usual case: it came while the question was answered), so the
      // offer is there when the reply is marked finished.
      if (!configKnown) {
        loadConfig().then(() => offerContact(row));
        return;
      }
      if (!leads || leadSent || contactOpen || !row.isConnected) return;
      if (offerEl && row.contains(offerEl)) return;
      if (offerEl) offerEl.remove();
      const wrap = el("div", "contact-offer");
      const button = el("button", "offer");
      button.type = "button";
      button.innerHTML = ICON.person; // static markup
      button.append(T.contactOffer);
      button.addEventListener("click", () => openContact(wrap, button));
      wrap.append(button);
      row.append(wrap);
      offerEl = wrap;
      scrollDown();
    }

    function openContact(wrap, offer) {
      if (contactOpen) return;
      contactOpen = true;
      const mine = generation;
      const id = `kb-contact-${++formCount}`;
      const form = el("form", "contact");
      form.noValidate = true; // our own messages, in the widget's language, beside each field
      const title = el("h3", "contact-title", T.contactTitle);
      title.id = `${id}-title`;
      form.setAttribute("aria-labelledby", title.id);
      form.append(title);

      const fields = {};
      function field(name, control, label, extraClass) {
        const box = el("div", extraClass ? `field ${extraClass}` : "field");
        control.id = `${id}-${name}`;
        control.name = name;
        const text = el("label", "", label);
        text.htmlFor = control.id;
        const error = el("p", "field-error");
        error.id = `${id}-${name}-error`;
        control.setAttribute("aria-describedby", error.id);
        if (control.type === "checkbox") box.append(control, text, error);
        else box.append(text, control, error);
        form.append(box);
        fields[name] = { control, error };
        control.addEventListener(control.type === "checkbox" ? "change" : "input", () => setError(name, ""));
        return control;
      }
      const name = el("input");
      name.type = "text";
      name.autocomplete = "name";
      name.maxLength = LEAD_LIMITS.name;
      name.required = true;
      field("name", name, T.name);
      const email = el("input");
      email.type = "email";
      email.autocomplete = "email";
      email.maxLength = LEAD_LIMITS.email;
      email.required = true;
      field("email", email, T.email);
      const message = el("textarea");
      message.rows = 3;
      message.maxLength = LEAD_LIMITS.message;
      message.required = true;
      field("message", message, T.contactMessage);
      const consent = el("input");
      consent.type = "checkbox";
      consent.required = true;
      field("consent", consent, T.consent, "consent");

      const status = el("p", "contact-status");
      status.setAttribute("role", "alert");
      const actions = el("div", "contact-actions");
      const cancel = el("button", "skip", T.cancel);
      cancel.type = "button";
      const submitBtn = el("button", "contact-send", T.contactSend);
      submitBtn.type = "submit";
      actions.append(cancel, submitBtn);
      form.append(status, actions);

      offer.hidden = true;
      wrap.append(form);
      name.focus();
      scrollDown(true);

      function setError(key, text) {
        const { control, error } = fields[key];
        error.textContent = text;
        if (text) control.setAttribute("aria-invalid", "true");
        else control.removeAttribute("aria-invalid");
      }

      function say(text, info) {
        status.classList.toggle("info", Boolean(info));
        status.textContent = text;
      }

      function close() {
        const hadFocus = form.contains(root.activeElement);
        form.remove();
        contactOpen = false;
        offer.hidden = false;
        if (hadFocus) offer.focus();
      }

      function done() {
        leadSent = true;
        contactOpen = false;
        storage.set("localStorage", LEAD_KEY, sessionId);
        const thanks = el("p", "lead-done", T.leadThanks);
        thanks.tabIndex = -1; // focus lands on the outcome, as it replaces the form that had it
        wrap.replaceWith(thanks);
        if (offerEl === wrap) offerEl = null;
        thanks.focus();
        scrollDown();
      }

      // The server names the fields it refused (`{"detail": [{"field": "email"}]}`, or FastAPI's own
      // `{"detail": [{"loc": ["body", "email"]}]}`): each gets its message, the first one the focus.
      function showRefused(body) {
        const messages = { name: T.badName, email: T.badEmail, message: T.badMessage, consent: T.needConsent };
        let first = null;
        for (const item of body && Array.isArray(body.detail) ? body.detail : []) {
          if (!item || typeof item !== "object") continue;
          let key = typeof item.field === "string" ? item.field : "";
          if (!key && Array.isArray(item.loc)) key = String(item.loc[item.loc.length - 1]);
          key = key.replace(/^body\./, "");
          if (!Object.prototype.hasOwnProperty.call(messages, key)) continue;
          setError(key, messages[key]);
          first = first || fields[key].control;
        }
        if (first) first.focus();
        else say(T.leadFailed);
      }

      function check() {
        const errors = [];
        if (!name.value.trim()) errors.push(["name", T.needName]);
        const address = email.value.trim();
        if (!address) errors.push(["email", T.needEmail]);
        else if (!EMAIL_SHAPE.test(address)) errors.push(["email", T.badEmail]);
        if (!message.value.trim()) errors.push(["message", T.needMessage]);
        if (!consent.checked) errors.push(["consent", T.needConsent]);
        for (const [key, text] of errors) setError(key, text);
        if (errors.length) fields[errors[0][0]].control.focus();
        return !errors.length;
      }

      let sending = false; // a second press meanwhile is ignored; the button keeps its focus
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (sending) return;
        for (const key of Object.keys(fields)) setError(key, "");
        say("");
        if (!check()) return;
        sending = true;
        form.setAttribute("aria-busy", "true");
        say(T.sending, true);
        const body = {
          name: name.value.trim(),
          email: email.value.trim(),
          message: message.value.trim(),
          consent: true,
          session_id: sessionId,
        };
        try {
          const response = await fetch(`${apiBase}/leads`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify(body),
          });
          if (mine !== generation) return;
          if (response.ok) {
            done();
            return;
          }
          say("");
          if (response.status === 422) showRefused(await response.json().catch(() => null));
          else if (response.status === 429) say(MESSAGES[429]);
          else if (response.status === 404) say(T.leadsOff);
          else if (response.status === 403) say(MESSAGES[403]);
          else say(T.leadFailed);
        } catch (_) {
          if (mine === generation) say(T.leadNetwork);
        } finally {
          sending = false;
          form.removeAttribute("aria-busy");
        }
      });
      cancel.addEventListener("click", close);
      form.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.stopPropagation(); // the form closes, not the whole chat
          close();
        }
      });
    }

    async function restoreHistory() {
      if (!hadSession) return; // a brand-new visitor has nothing to restore: skip the request
      const mine = generation;
      restoring = true;
      setBusy(true);
      try {
        const response = await fetch(`${apiBase}/history/${encodeURIComponent(sessionId)}`, {
          headers: { Accept: "application/json" },
        });
        if (!response.ok) return;
        const data = await response.json();
        if (mine !== generation) return;
        for (const message of Array.isArray(data.messages) ? data.messages : []) {
          if (!message || typeof message.content !== "string") continue;
          if (message.role === "user") addMessage("user", message.content);
          else if (message.role === "assistant") addMessage("assistant", message.content, message.sources);
        }
      } catch (_) {
        // A conversation that cannot be restored simply starts afresh: nothing worth alarming anyone.
      } finally {
        if (mine === generation) {
          restoring = false;
          setBusy(false);
          showStarters();
        }
      }
    }

    function start() {
      if (started) return;
      started = true;
      showGreeting();
      loadConfig();
      restoreHistory().then(showStarters);
    }

    function setOpen(open, focus = true) {
      isOpen = open;
      kb.classList.toggle("open", open);
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", open ? T.closeChat : T.openChat);
      storage.set("sessionStorage", OPEN_KEY, open ? "1" : "0");
      if (open) start();
      if (focus) (open ? input : launcher).focus();
    }

    async function send(text) {
      const mine = generation;
      controller = new AbortController();
      setBusy(true);
      hideStarters();
      addMessage("user", text);
      const reply = addMessage("assistant", "");
      const typing = el("div", "typing");
      typing.setAttribute("role", "img");
      typing.setAttribute("aria-label", T.typing);
      typing.append(el("span"), el("span"), el("span"));
      reply.bubble.append(typing);
      scrollDown(true);

      let answer = "";
      let sources = [];
      let answerId = null;
      let ended = false;
      let offer = false; // the server's `offer_contact`: no answer, or the visitor asked for a person
      try {
        const response = await fetch(`${apiBase}/chat/stream`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ message: text, session_id: sessionId, use_cache: true }),
          signal: controller.signal,
        });
        if (!response.ok || !response.body) {
          showNotice(reply, MESSAGES[response.status] || MESSAGES.other);
          return;
        }
        for await (const event of readEvents(response.body)) {
          if (mine !== generation) return;
          if (event.name === "sources") {
            sources = Array.isArray(event.data) ? event.data : [];
          } else if (event.name === "token" && event.data && typeof event.data.text === "string") {
            answer += event.data.text;
            renderRich(reply.bubble, answer); // replaces the typing indicator on the first token
            scrollDown();
          } else if (event.name === "done") {
            ended = true;
            offer = Boolean(event.data && event.data.offer_contact === true);
            const id = event.data && event.data.answer_id;
            if (typeof id === "string" && ID_PATTERN.test(id)) answerId = id;
            if (!answer) showNotice(reply, MESSAGES.other); // "success" with no text: not an answer
            else addSources(reply.row, sources);
            scrollDown();
          } else if (event.name === "error") {
            ended = true;
            offer = Boolean(event.data && event.data.offer_contact === true);
            answerId = null;
            const message = event.data && typeof event.data.message === "string" ? event.data.message : "";
            showNotice(reply, message || MESSAGES.other);
          }
        }
        if (!ended) showNotice(reply, MESSAGES.interrupted);
        else if (answer && answerId) {
          addFeedback(reply.row, answerId); // once the answer is whole, not while it streams
          scrollDown();
        }
        if (ended && offer) offerContact(reply.row);
      } catch (error) {
        if (mine !== generation || (error && error.name === "AbortError")) return;
        showNotice(reply, answer ? MESSAGES.interrupted : MESSAGES.network);
      } finally {
        if (mine === generation) {
          typing.remove();
          setBusy(false);
        }
      }
    }

    function newConversation() {
      const oldId = sessionId;
      generation += 1;
      if (controller) controller.abort();
      // keepalive: the server should forget the old conversation even if the page goes away right after.
      fetch(`${apiBase}/history/${encodeURIComponent(oldId)}`, { method: "DELETE", keepalive: true }).catch(
        () => {}
      );
      sessionId = newSessionId();
      storage.set("localStorage", SESSION_KEY, sessionId);
      logEl.textContent = "";
      restoring = false;
      leadSent = false;
      offerEl = null;
      contactOpen = false;
      setBusy(false);
      showGreeting();
      showStarters();
      input.focus();
    }

    function submit() {
      const text = input.value.trim();
      if (!text || busy) return;
      input.value = "";
      autosize();
      send(text);
    }

    launcher.addEventListener("click", () => setOpen(!isOpen));
    $(".close").addEventListener("click", () => setOpen(false));
    $(".new").addEventListener("click", newConversation);
    $(".composer").addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    input.addEventListener("input", () => {
      autosize();
      updateSend();
    });
    input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; Enter that confirms an IME composition is neither.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    kb.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && isOpen) {
        event.stopPropagation();
        setOpen(false);
      }
    });

    // A reload (or the next page of the site) keeps the chat open where the visitor left it.
    // No opening animation then: the panel should simply be there, as it was.
    if (storage.get("sessionStorage", OPEN_KEY) === "1") {
      kb.classList.add("still");
      setOpen(true, false);
      requestAnimationFrame(() => requestAnimationFrame(() => kb.classList.remove("still")));
    }
  }

  // ---------------------------------------------------------------- Server-Sent Events over fetch
  // EventSource cannot POST, so events are parsed here. A read may end anywhere, even mid-line.
  async function* readEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
        // CRLF and CR end lines too; a CR at the very end may be half of a CRLF split across reads.
        buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) yield event;
        }
        if (done) {
          const event = parseEvent(buffer.replace(/\r$/, ""));
          if (event) yield event;
          return;
        }
      }
    } finally {
      // Stops downloading a reply nobody will show (the conversation was reset); harmless when done.
      reader.cancel().catch(() => {});
    }
  }

  function parseEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // blank or comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    try {
      return { name, data: JSON.parse(data.join("\n")) };
    } catch (_) {
      return null; // a malformed event is skipped, not shown
    }
  }

  // Whether white text on the accent would be hard to read (WCAG contrast under 3:1, e.g. yellow): most
  // brand colours carry white text, as visitors expect, and very light ones get near-black instead.
  function isLight(accent, root) {
    const probe = el("span");
    probe.style.color = accent;
    root.append(probe);
    const match = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/.exec(getComputedStyle(probe).color);
    probe.remove();
    if (!match) return false;
    const [r, g, b] = match.slice(1, 4).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    return 1.05 / (luminance + 0.05) < 3;
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
