import type { Language } from '../index';

/** The widget's texts, one table per language of the reference. */
export interface Texts {
  chats: string;
  noChats: string;
  typeMessage: string;
  send: string;
  online: string;
  offline: string;
  back: string;
  close: string;
  openChat: string;
  connecting: string;
  reconnecting: string;
  disconnected: string;
  loadingOlder: string;
  noMessages: string;
  notSent: string;
  unread: (n: number) => string;
  incomingCall: string;
  calling: string;
  answer: string;
  decline: string;
  cancel: string;
  hangUp: string;
  mute: string;
  unmute: string;
  cameraOff: string;
  cameraOn: string;
  callConnecting: string;
  inCall: string;
  callEnded: string;
  shareScreen: string;
  stopSharing: string;
  callInWindow: string;
  endReasons: Record<string, string>;
  feedbackQuestion: string;
  thanks: string;
}

const en: Texts = {
  chats: 'Chats',
  noChats: 'No conversations yet',
  typeMessage: 'Type a message',
  send: 'Send',
  online: 'online',
  offline: 'offline',
  back: 'Back',
  close: 'Close',
  openChat: 'Open the chat',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  disconnected: 'Not connected',
  loadingOlder: 'Loading earlier messages…',
  noMessages: 'No messages yet',
  notSent: 'Not sent, try again',
  unread: (n) => (n === 1 ? '1 unread message' : `${n} unread messages`),
  incomingCall: 'Incoming call',
  calling: 'Calling…',
  answer: 'Answer',
  decline: 'Decline',
  cancel: 'Cancel',
  hangUp: 'Hang up',
  mute: 'Mute',
  unmute: 'Unmute',
  cameraOff: 'Camera off',
  cameraOn: 'Camera on',
  callConnecting: 'Connecting the call…',
  inCall: 'In call',
  callEnded: 'Call ended',
  shareScreen: 'Share screen',
  stopSharing: 'Stop sharing',
  callInWindow: 'The call is in its own window',
  endReasons: {
    declined: 'Declined', canceled: 'Canceled', answered_of_another_device: 'Answered on another device',
    hang_up: 'Hung up', timeout: 'No answer', connection_lost: 'Connection lost',
    duration_expired: 'Time is up', room_closed: 'The room was closed', user_removed: 'A participant left the service',
  },
  feedbackQuestion: 'How was the call?',
  thanks: 'Thank you!',
};

const it: Texts = {
  chats: 'Chat',
  noChats: 'Nessuna conversazione',
  typeMessage: 'Scrivi un messaggio',
  send: 'Invia',
  online: 'online',
  offline: 'offline',
  back: 'Indietro',
  close: 'Chiudi',
  openChat: 'Apri la chat',
  connecting: 'Connessione…',
  reconnecting: 'Riconnessione…',
  disconnected: 'Non connesso',
  loadingOlder: 'Caricamento dei messaggi precedenti…',
  noMessages: 'Ancora nessun messaggio',
  notSent: 'Non inviato, riprova',
  unread: (n) => (n === 1 ? '1 messaggio non letto' : `${n} messaggi non letti`),
  incomingCall: 'Chiamata in arrivo',
  calling: 'Chiamata in corso…',
  answer: 'Rispondi',
  decline: 'Rifiuta',
  cancel: 'Annulla',
  hangUp: 'Riaggancia',
  mute: 'Disattiva microfono',
  unmute: 'Attiva microfono',
  cameraOff: 'Spegni videocamera',
  cameraOn: 'Accendi videocamera',
  callConnecting: 'Collegamento…',
  inCall: 'In chiamata',
  callEnded: 'Chiamata terminata',
  shareScreen: 'Condividi schermo',
  stopSharing: 'Interrompi condivisione',
  callInWindow: 'La chiamata è in una finestra a parte',
  endReasons: {
    declined: 'Rifiutata', canceled: 'Annullata', answered_of_another_device: 'Risposta su un altro dispositivo',
    hang_up: 'Conclusa', timeout: 'Nessuna risposta', connection_lost: 'Connessione persa',
    duration_expired: 'Tempo scaduto', room_closed: 'La stanza è stata chiusa', user_removed: 'Un partecipante ha lasciato il servizio',
  },
  feedbackQuestion: 'Com’è andata la chiamata?',
  thanks: 'Grazie!',
};

const es: Texts = {
  chats: 'Chats',
  noChats: 'Aún no hay conversaciones',
  typeMessage: 'Escribe un mensaje',
  send: 'Enviar',
  online: 'en línea',
  offline: 'desconectado',
  back: 'Atrás',
  close: 'Cerrar',
  openChat: 'Abrir el chat',
  connecting: 'Conectando…',
  reconnecting: 'Reconectando…',
  disconnected: 'Sin conexión',
  loadingOlder: 'Cargando mensajes anteriores…',
  noMessages: 'Todavía no hay mensajes',
  notSent: 'No enviado, inténtalo de nuevo',
  unread: (n) => (n === 1 ? '1 mensaje sin leer' : `${n} mensajes sin leer`),
  incomingCall: 'Llamada entrante',
  calling: 'Llamando…',
  answer: 'Contestar',
  decline: 'Rechazar',
  cancel: 'Cancelar',
  hangUp: 'Colgar',
  mute: 'Silenciar',
  unmute: 'Activar sonido',
  cameraOff: 'Apagar cámara',
  cameraOn: 'Encender cámara',
  callConnecting: 'Conectando la llamada…',
  inCall: 'En llamada',
  callEnded: 'Llamada finalizada',
  shareScreen: 'Compartir pantalla',
  stopSharing: 'Dejar de compartir',
  callInWindow: 'La llamada está en otra ventana',
  endReasons: {
    declined: 'Rechazada', canceled: 'Cancelada', answered_of_another_device: 'Contestada en otro dispositivo',
    hang_up: 'Colgada', timeout: 'Sin respuesta', connection_lost: 'Conexión perdida',
    duration_expired: 'Se acabó el tiempo', room_closed: 'La sala se cerró', user_removed: 'Un participante dejó el servicio',
  },
  feedbackQuestion: '¿Qué tal fue la llamada?',
  thanks: '¡Gracias!',
};

const pt: Texts = {
  chats: 'Conversas',
  noChats: 'Nenhuma conversa ainda',
  typeMessage: 'Digite uma mensagem',
  send: 'Enviar',
  online: 'online',
  offline: 'offline',
  back: 'Voltar',
  close: 'Fechar',
  openChat: 'Abrir o chat',
  connecting: 'Conectando…',
  reconnecting: 'Reconectando…',
  disconnected: 'Desconectado',
  loadingOlder: 'Carregando mensagens anteriores…',
  noMessages: 'Ainda não há mensagens',
  notSent: 'Não enviada, tente de novo',
  unread: (n) => (n === 1 ? '1 mensagem não lida' : `${n} mensagens não lidas`),
  incomingCall: 'Chamada recebida',
  calling: 'Chamando…',
  answer: 'Atender',
  decline: 'Recusar',
  cancel: 'Cancelar',
  hangUp: 'Desligar',
  mute: 'Silenciar',
  unmute: 'Ativar som',
  cameraOff: 'Desligar câmera',
  cameraOn: 'Ligar câmera',
  callConnecting: 'Conectando a chamada…',
  inCall: 'Em chamada',
  callEnded: 'Chamada encerrada',
  shareScreen: 'Compartilhar tela',
  stopSharing: 'Parar de compartilhar',
  callInWindow: 'A chamada está em outra janela',
  endReasons: {
    declined: 'Recusada', canceled: 'Cancelada', answered_of_another_device: 'Atendida em outro dispositivo',
    hang_up: 'Encerrada', timeout: 'Sem resposta', connection_lost: 'Conexão perdida',
    duration_expired: 'O tempo acabou', room_closed: 'A sala foi fechada', user_removed: 'Um participante saiu do serviço',
  },
  feedbackQuestion: 'Como foi a chamada?',
  thanks: 'Obrigado!',
};

const tables: Record<Language, Texts> = { en, it, es, pt };

export function texts(lang: Language): Texts {
  return tables[lang] || en;
}
