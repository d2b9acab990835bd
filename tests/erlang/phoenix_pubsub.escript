#!/usr/bin/env escript
%% What an Elixir node on Phoenix.PubSub's Redis adapter publishes and reads,
%% for js-client-fixtures/phoenix-pubsub.test.mjs (real term_to_binary and
%% binary_to_term, no Elixir needed):
%%   encode MODE NODE TOPIC EVENT CASE [compressed]  -> hex of the adapter's term
%%   decode HEX                                      -> one line describing it
%% MODE: except | only. CASE: msg | binary | disconnect | presence | not_broadcast.
main(["encode", Mode, Node, Topic, Event, Case | Opts]) ->
    T = list_to_binary(Topic),
    Msg = message(Case, T, list_to_binary(Event)),
    Dispatcher = case Case of
                     presence -> 'Elixir.Phoenix.Presence.Tracker';
                     "presence" -> 'Elixir.Phoenix.Presence.Tracker';
                     _ -> 'Elixir.Phoenix.Channel.Server'
                 end,
    Term = {3, list_to_atom(Mode), list_to_binary(Node), T, Msg, Dispatcher},
    Bin = case Opts of
              ["compressed"] -> term_to_binary(Term, [compressed]);
              _ -> term_to_binary(Term)
          end,
    io:format("~s~n", [binary:encode_hex(Bin)]);
main(["decode", Hex]) ->
    case binary_to_term(binary:decode_hex(list_to_binary(Hex))) of
        {3, Mode, Node, Topic, #{'__struct__' := 'Elixir.Phoenix.Socket.Broadcast',
                                 topic := Topic, event := Event, payload := Payload},
         'Elixir.Phoenix.Channel.Server'} ->
            io:format("ok mode=~p node=~s topic=~s event=~s payload=~w~n",
                      [Mode, Node, Topic, Event, Payload]);
        Other ->
            io:format("unexpected ~w~n", [Other]),
            halt(1)
    end.

message("msg", T, E) ->
    broadcast(T, E, #{<<"body">> => <<"hi from elixir">>, <<"n">> => 12345678901234567890,
                      <<"nested">> => #{<<"ok">> => true, <<"none">> => nil, ids => [1, 2.5]}});
message("binary", T, E) -> broadcast(T, E, {binary, <<1, 2, 3, 255>>});
message("disconnect", T, _) -> broadcast(T, <<"disconnect">>, #{});
message("presence", T, _) -> {phx_presence_heartbeat, T, self()};
message("not_broadcast", T, _) -> {something_else, T}.

broadcast(T, E, P) ->
    #{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', topic => T, event => E, payload => P}.
