// A consumer of the SDK written from the widget reference's examples
// (shared/reference/widget-api.txt), checked with `tsc --noEmit -p
// sdkapi/sdk`. The page loads the script, which defines the global
// BandyerSDK; the types come from the package's declarations.
//
// Where an example of the reference is not valid TypeScript or contradicts
// the reference's own tables, the line is adapted and says how:
//   - `sendMessage`, `fetchMessages`, `addChannel`, `createCall`,
//     `joinCallURL` return promises (their tables list rejections), so the
//     examples that assign their result without `await` get one;
//   - `({channelId: string, participants: string[]})` is not a valid
//     destructuring pattern: it binds the two names instead;
//   - the migration guide's `call:status:changed` handler `(call, status)`
//     takes the main section's `({ call, status })`.

import type { CallView, Channel, ChannelView, Client, Message } from '../index';

declare function yourAsyncFunction(): Promise<string>;
declare function yourAsyncFetchFunction(userId: string): Promise<{ userId: string; firstName: string; lastName: string; image: string }>;
declare function getAccessToken(userId: string): Promise<string>;
declare const userId: string;
declare const accessToken: string;
declare const messageToFetch: number;
declare const anchor: string;
declare const direction: 'backwards' | 'afterward';
declare const text: string;

export async function configureAndConnect(): Promise<Client> {
  console.log(BandyerSDK.version);

  const Client: Client = await BandyerSDK.configure({
    appId: 'client secret',
    region: 'eu',
    environment: 'sandbox',
  });

  Client.on('client:access_token:is_about_to_expire', async (data) => {
    // data: {expiresAt: "2022-01-10T11:41:19.000Z"'}
    console.log(data.expiresAt);
    const accessToken = await yourAsyncFunction(); // async function that allow you to ask a new accessToken to the server
    // Provide the obtained accessToken to the sdk
    const { expiresAt } = await Client.updateAccessToken(accessToken); // return the new expiration date
    console.log(expiresAt);
  });
  Client.on('client:access_token:about_to_expire', async () => {
    await Client.updateAccessToken(await yourAsyncFunction());
  });
  Client.on('client:access_token:expired', async () => {
    // the session expired, for some reason the update token process is failed, you need to re-connect the Client with a new access token
    await Client.disconnect();
    // retrieve a new accessToken
    await Client.connect(userId, accessToken);
  });
  Client.on('client:force_disconnect', () => {
    // the user was disabled or deleted from a rest api
  });

  try {
    await Client.connect(userId, accessToken);
  } catch (error) {
    console.error('Fail to connect the client', error);
  }
  return Client;
}

export function layoutAndUsers(): Promise<Client> {
  const yourProviderFunction = function (usersIds: string[]) {
    const userObjPromises: Promise<{ userId: string; firstName: string; lastName: string; image: string }>[] = [];
    usersIds.forEach((userId) => {
      // Your logic here
      const user = yourAsyncFetchFunction(userId);
      userObjPromises.push(user);
    });
    return Promise.all(userObjPromises);
  };
  const yourFormatterFunction = function (user: { userId: string; [key: string]: unknown }) {
    return user.firstName + ' ' + user.lastName;
  };
  return BandyerSDK.configure({
    region: 'eu',
    appId: 'wAppId_fake123456',
    environment: 'sandbox',
    layout: {
      body: { background: '#0069B4', color: '#000' },
      dial: { background: '#003762', color: '#fff' },
      call: { background: '#003762', color: '#fff' },
      messageSent: { background: '#003762', color: '#fff' },
      launcher: { background: '#0069B4' },
      header: { background: '#003762', color: '#fff' },
      headerButton: { background: '#0069B4', color: '#fff' },
      feedback: { body: { background: '#0069B4', color: '#fff' }, buttons: { background: '#0069B4', color: '#fff' } },
      fontFamily: '"Segoe UI","Segoe",Tahoma,Helvetica,Arial,sans-serif',
    },
    tools: {
      whiteboard: {
        wb_add_file: true,
        wb_cursor: true,
        wb_text: true,
        wb_shape: true,
        wb_pen: true,
        wb_eraser: true,
      },
    },
    userDetailsProvider: yourProviderFunction,
    userDetailsFormatter: yourFormatterFunction,
  });
}

export async function chat(Client: Client): Promise<void> {
  // when a message was sent in a channel
  Client.on('channel:message:sent', ({ message: Message }) => {
    console.log(Message.text);
  });
  // when a message was received in a channel
  Client.on('channel:message:received', ({ message: Message }) => {
    console.log(Message.sender);
  });
  // when a channel was added using api/ rest
  Client.on('channel:added', ({ channel: Channel }) => {
    console.log(Channel.channelId);
  });
  // when a channel was removed using api/ rest
  Client.on('channel:removed', ({ channelId, participants }) => {
    console.log(channelId, participants);
  });

  const channelView: ChannelView = await Client.addChannel('usr_fr55ga3');
  await Client.removeChannel('usr_fr55ga3');
  Client.getChannelView(userId);
  Client.selectChannelsView();

  // channelView received from an event or retrieved from the channelView() method
  channelView.select();
  const Channel: Channel = channelView.channel;
  Channel.on('channel:message:added', (message: Message) => {
    // your logic
    console.log(message.messageId, message.channel.channelId, message.creationDate);
  });
  const messagesObejct: { messages: Message[]; anchor: string } = await channelView.fetchMessages(messageToFetch, anchor, direction);
  console.log(messagesObejct.anchor);
  const message: Message = await channelView.sendMessage(text);
  console.log(message.text);

  // from the migration guide
  const chatsList = Client.channelsView; // array of channelViews instead of getChats()
  console.log(chatsList.length);
  const channelView2 = await Client.addChannel(userId);
  channelView2.select();
  channelView2.textArea = 'How are you'; // same as composeMessage with send = false
  const message2 = await channelView2.channel.sendMessage('How are you'); // same as composeMessage with send = true
  console.log(message2.messageId);
  console.log(channelView2.channel.unreadMessages); // get unreadMessages on singleChannels instead of getUnreadMessages()
  console.log(channelView2.channel.participants, channelView2.channel.messages);
  await Client.removeChannel(userId);
}

export async function calls(Client: Client): Promise<void> {
  // triggered when a call is created (status equal to dialing)
  Client.on('call:incoming', ({ call: Call }) => {
    // yuor logic
    console.log(Call.roomId, Call.direction, Call.options.callType);
  });
  // triggered when the call change the status (connecting, connected, ended)
  Client.on('call:status:changed', ({ call: Call, status }) => {
    // yuor logic, note if the status was ended, the call object can have a endReason
    console.log(Call.endReason, status);
  });
  // Example of how to use a ring tone
  Client.on('call:incoming', ({ call }) => {
    Client.callView.tone.ring.stop(); // this avoid that the ring tone start
    // do what you want
    // ...
    Client.callView.tone.ring.play(); // if needed you can play the ring tone
    call.on('status:changed', (status: string) => {
      // status can be 'dialing', 'connecting' 'connected' or 'ended'
      console.log(status);
    });
    call.on('recording:state:changed', ({ recordingState: string }) => {
      console.log(string);
    });
    call.answer();
    //call.end();
  });

  const callView: CallView = await Client.createCall(['usr_fr55ga3'], { call_type: 'audio_video' });
  callView.select();
  await callView.call?.end();
  const call: CallView = await Client.joinCallUrl('https://sandbox.bandyer.com/region/direct-rest-call-handler/token');
  console.log(call.call?.status);
  try {
    const accessLink = 'https://sandbox.bandyer.com/eu/direct-rest-call-handler/adufj5769cnapmce';
    // remember that the link must match the region and the environment forwarded in the configuration phase
    await Client.joinCallURL(accessLink);
  } catch (error) {
    console.error('Fail to connect the client', error);
  }
}

export async function usersAndWidget(Client: Client): Promise<void> {
  // triggered when a user in you company change you status(online, offline)
  Client.on('user:status:changed', (data: { userId: string; status: string }) => {
    // yuor logic
    console.log(data.userId, data.status);
  });
  const users: string[] = Client.getOnlineUsers();
  users.forEach((user) => {
    console.log('the user', user, 'is online');
  });
  Client.showWidget();
  Client.hideWidget();
  Client.openWidget();
  Client.closeWidget();
  Client.toggleWidget();
  console.log(Client.region, Client.environment, Client.appId, Client.userId, Client.callView.call);

  // the migration guide's end of a session
  const client = await BandyerSDK.configure({ region: 'eu', environment: 'sandbox', appId: 'wAppId_fake123456', mode: 'window', tools: {} });
  client.on('client:access_token:is_about_to_expire', async () => {
    const accessToken = await getAccessToken(userId); // your async function to obtain a valid accessToken
    await client.updateAccessToken(accessToken);
  });
  await client.connect(userId, await getAccessToken(userId));
  await client.disconnect(); // replacement of the old BandyerChat.logout() function
  await BandyerSDK.destroyClient(); // destroys the client allowing a new configuration
}
